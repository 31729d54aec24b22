"""`python -m messages_bridge` runs the same CLI as the `messages-bridge` script."""

from messages_bridge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
