"""One module per experiment, each with `run(config, workdir)`: read the config, call techniques,
write images, metrics.jsonl and report.html. No math lives here."""
