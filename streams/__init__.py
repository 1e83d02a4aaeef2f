"""The running service: the faust app, its stages, the ledger sink, web views and the CLI."""
