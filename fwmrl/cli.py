def main() -> None:  # placeholder until the trainer issue
    raise SystemExit("fwmrl CLI: not yet available")
