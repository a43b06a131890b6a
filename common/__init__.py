"""What every part shares: the command line, structured logs, serving errors."""
