"""`messages-bridge config check [PATH]` and `serve --config PATH` / BRIDGE_CONFIG."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from messages_bridge.cli import main
from tests.processes import clean_env
from tests.routing.test_config_file import EXAMPLE


@pytest.fixture(autouse=True)
def _clean_env() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env())
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def example(tmp_path: Path) -> str:
    os.environ |= {
        "OPENAI_API_KEY": "sk-proj-first-secret-value-0001",
        "OPENAI_API_KEY_2": "sk-proj-second-secret-value-0002",
        "AZURE_OPENAI_API_KEY": "azure-third-secret-value-0003",
    }
    path = tmp_path / "routing.yaml"
    path.write_text(EXAMPLE)
    return str(path)


def test_config_check_prints_the_routing_table_with_secrets_masked(
    example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", example]) == 0
    out = capsys.readouterr().out
    assert "openai: responses https://api.openai.com/v1 (bearer; keys: [0] ****0001, [1] ****0002)" in out
    assert "azure: azure https://myres.openai.azure.com/openai/v1 (api-key header; keys: [0] ****0003)" in out
    assert "1. claude-haiku-* -> openai/gpt-5-mini, azure/gpt-5-mini" in out
    assert "2. * when input_tokens>=200000 -> azure/gpt-4.1" in out
    assert "3. * -> openai/gpt-5, azure/gpt-5" in out
    assert "allow_direct: true" in out
    assert "azure/gpt-4.1: reasoning=no sampling=true context_window=1047576 max_output_tokens=32768 (declared)" in out
    assert "openai/gpt-5: reasoning=minimal,low,medium,high sampling=false" in out
    assert "openai/gpt-5-mini: reasoning=passed through" in out and "(defaults)" in out
    assert "secret-value" not in out


def test_config_check_reads_bridge_config(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["BRIDGE_CONFIG"] = example
    assert main(["config", "check"]) == 0
    assert "routes (first match wins):" in capsys.readouterr().out


def test_config_check_refuses_an_invalid_file_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams: {a: {base_url: 'http://h', kind: chat}}\nallow_direct: true\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid routing file" in err and "upstreams.a.kind" in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_config_check_warns_about_a_literal_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "literal.yaml"
    path.write_text(
        "upstreams: {a: {base_url: 'http://h', api_keys: [sk-literal-in-the-file-000001]}}\nallow_direct: true\n"
    )
    assert main(["config", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "upstreams.a.api_keys.0 is a literal secret" in captured.err
    assert "sk-literal-in-the-file" not in captured.err + captured.out


def test_serve_refuses_an_invalid_file_before_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams: {a: {base_url: 'http://h'}}\nroutes: [{match: '*', targets: [b/gpt-5]}]\n")
    assert main(["serve", "--config", str(path), "--port", "0"]) == 2
    assert "routes.0.targets.0: unknown upstream 'b'" in capsys.readouterr().err
    assert os.environ["BRIDGE_CONFIG"] == str(path)  # the flag reaches every worker as BRIDGE_CONFIG
