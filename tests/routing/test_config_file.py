"""The routing file: the issue's example validates, `${VAR}` substitution, literal-secret warnings, and every
invalid file is refused with a message naming the field (and never echoing a secret)."""

from __future__ import annotations

import textwrap

import pytest

from messages_bridge.routing.config_file import ConfigError, ConfigFile, parse_config

EXAMPLE = """
upstreams:
  openai:
    kind: responses
    base_url: https://api.openai.com/v1
    api_keys: ["${OPENAI_API_KEY}", "${OPENAI_API_KEY_2}"]
    headers: {OpenAI-Organization: org-123}
    timeouts: {connect: 10, read: 600}
    max_connections: 1024
  azure:
    kind: azure
    base_url: https://myres.openai.azure.com/openai/v1
    api_keys: ["${AZURE_OPENAI_API_KEY}"]
    api_version: null
models:
  gpt-5:   {reasoning_efforts: [minimal, low, medium, high], sampling: false, context_window: 400000,
            max_output_tokens: 128000}
  gpt-5.1: {reasoning_efforts: [none, low, medium, high]}
  gpt-4.1: {reasoning_efforts: [], sampling: true, context_window: 1047576, max_output_tokens: 32768}
routes:
  - match: "claude-haiku-*"
    targets: [openai/gpt-5-mini, azure/gpt-5-mini]
  - match: "*"
    when: {min_input_tokens: 200000}
    targets: [azure/gpt-4.1]
  - match: "*"
    targets: [openai/gpt-5, azure/gpt-5]
allow_direct: true
"""
ENV = {"OPENAI_API_KEY": "sk-one-1111", "OPENAI_API_KEY_2": "sk-two-2222", "AZURE_OPENAI_API_KEY": "az-3333"}


def parse(text: str, env: dict[str, str] | None = None) -> tuple[ConfigFile, list[str]]:
    return parse_config(textwrap.dedent(text), source="routing.yaml", env=ENV if env is None else env)


def refused(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return str(info.value)


def test_the_issue_example_is_valid_and_secrets_come_from_the_environment() -> None:
    config, warnings = parse_config(EXAMPLE, source="routing.yaml", env=ENV)
    assert warnings == []
    openai = config.upstreams["openai"]
    assert [k.get_secret_value() for k in openai.api_keys] == ["sk-one-1111", "sk-two-2222"]
    assert openai.headers == {"OpenAI-Organization": "org-123"}
    assert config.upstreams["azure"].kind == "azure"
    assert config.models["gpt-4.1"].reasoning_efforts == ()
    assert [r.match for r in config.routes] == ["claude-haiku-*", "*", "*"]
    assert config.routes[1].when is not None and config.routes[1].when.min_input_tokens == 200000
    assert config.allow_direct is True
    assert "sk-one" not in repr(config)  # secrets stay SecretStr


def test_a_default_after_colon_dash_and_substitution_inside_a_string() -> None:
    config, _ = parse(
        """
        upstreams:
          local: {base_url: "http://${HOST:-127.0.0.1}:8000/v1"}
        allow_direct: true
        """
    )
    assert config.upstreams["local"].base_url == "http://127.0.0.1:8000/v1"


def test_an_unset_variable_names_the_field_and_the_variable() -> None:
    message = refused(
        """
        upstreams:
          openai: {base_url: "${MISSING_URL}"}
        allow_direct: true
        """
    )
    assert "upstreams.openai.base_url" in message and "MISSING_URL" in message


def test_a_key_whose_variable_is_unset_is_left_out_with_a_warning() -> None:
    config, warnings = parse_config(EXAMPLE, source="routing.yaml", env={"OPENAI_API_KEY": "sk-one-1111"})
    assert [k.get_secret_value() for k in config.upstreams["openai"].api_keys] == ["sk-one-1111"]
    assert config.upstreams["azure"].api_keys == ()
    assert warnings == [
        "routing.yaml: upstreams.openai.api_keys.1: environment variable OPENAI_API_KEY_2 is not set: that key is "
        "left out",
        "routing.yaml: upstreams.azure.api_keys.0: environment variable AZURE_OPENAI_API_KEY is not set: that key is "
        "left out",
        "routing.yaml: upstreams.azure.api_keys: no key is set, requests to this upstream go without credentials",
    ]


def test_a_literal_secret_is_allowed_but_warned_about_by_place_not_value() -> None:
    _, warnings = parse(
        """
        upstreams:
          openai:
            base_url: "https://api.openai.com/v1"
            api_keys: [sk-literal-secret-value]
            headers: {Authorization: x}
        allow_direct: true
        """
    )
    assert len(warnings) == 2
    assert "upstreams.openai.api_keys.0" in warnings[0] and "literal secret" in warnings[0]
    assert "upstreams.openai.headers.Authorization" in warnings[1]
    assert all("sk-literal" not in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("upstreams: {}\nallow_direct: true", "upstreams"),
        ("upstreams: {a: {base_url: 'x'}}\nallow_direct: true", "upstreams.a.base_url"),
        ("upstreams: {a: {base_url: 'http://h', kind: chat}}\nallow_direct: true", "upstreams.a.kind"),
        ("upstreams: {a: {base_url: 'http://h', colour: red}}\nallow_direct: true", "upstreams.a.colour"),
        (
            "upstreams: {a: {base_url: 'http://h'}}\nmodels: {m: {reasoning_efforts: [huge]}}\nallow_direct: true",
            "models.m.reasoning_efforts.0",
        ),
        (
            "upstreams: {a: {base_url: 'http://h'}}\nmodels: {m: {max_output_tokens: 3}}\nallow_direct: true",
            "models.m.max_output_tokens",
        ),
        ("upstreams: {a: {base_url: 'http://h'}}\nroutes: [{match: '*', targets: [zz/gpt-5]}]", "routes.0.targets.0"),
        ("upstreams: {a: {base_url: 'http://h'}}\nroutes: [{match: '*', targets: [gpt-5]}]", "routes.0.targets.0"),
        ("upstreams: {a: {base_url: 'http://h'}}\nroutes: [{match: '*', targets: []}]", "routes.0.targets"),
        (
            "upstreams: {a: {base_url: 'http://h'}}\nroutes: [{match: '*', when: {thinkin: true}, targets: [a/m]}]",
            "routes.0.when.thinkin",
        ),
        ("upstreams: {a: {base_url: 'http://h'}}", "routes"),
        ("upstreams: {'a/b': {base_url: 'http://h'}}\nallow_direct: true", "upstreams"),
        ("upstreams: {a: {base_url: 'http://h'}}\nallow_direct: maybe", "allow_direct"),
        ("upstream: {a: {base_url: 'http://h'}}", "upstream"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_field(text: str, field: str) -> None:
    message = refused(text)
    assert message.startswith("routing.yaml: ")
    assert field in message


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML (line" in refused("upstreams: [unclosed")
    assert "must be a mapping" in refused("- just\n- a list")


def test_a_rejected_value_is_never_echoed() -> None:
    message = refused("upstreams: {a: {base_url: 'http://h', api_keys: sk-not-a-list-secret}}\nallow_direct: true")
    assert "upstreams.a.api_keys" in message
    assert "sk-not-a-list-secret" not in message


def test_fields_other_features_read_are_accepted() -> None:
    config, _ = parse(
        """
        upstreams: {a: {base_url: 'http://h'}}
        models:
          gpt-5: {price: {input: 1.25, cached_input: 0.125, output: 10}, web_search: true}
        web_search: {mode: gateway, backend: {kind: searxng, url: 'http://127.0.0.1:8888', timeout: 5}}
        allow_direct: true
        """
    )
    profile = config.models["gpt-5"]
    assert profile.price is not None and profile.price.cached_input == 0.125 and profile.price.output == 10
    assert profile.web_search is True
    assert config.web_search is not None and config.web_search.mode == "gateway"
    assert config.web_search.backend is not None and config.web_search.backend.timeout == 5
