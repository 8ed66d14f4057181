"""The command-line entry points; each `main(argv) -> exit status`."""
