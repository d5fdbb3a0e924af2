"""`python -m segcli` is the same as `seg`."""

from segcli.cli.app import main

if __name__ == "__main__":
    main()
