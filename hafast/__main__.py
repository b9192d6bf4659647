from hafast.cli import entry

entry()
