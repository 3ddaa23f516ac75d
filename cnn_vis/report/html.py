"""The per-run HTML report (`report.html`) and the index of all runs under a directory."""
import datetime
import html
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from cnn_vis.runs import read_metrics

# A report section: (heading, items); an item is (caption, relative image path or None, text or None).
Item = tuple[str, str | None, str | None]
Section = tuple[str, Sequence[Item]]

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:100%}
figure img{max-width:640px;image-rendering:pixelated;border:1px solid #ccc}
figcaption{font-size:.85em;max-width:640px}pre{background:#f5f5f5;padding:1em;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"""


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def _item_html(caption: str, image: str | None, text: str | None) -> str:
  parts = ["<figure>"]
  if image:
    parts.append(f'<a href="{html.escape(image)}"><img src="{html.escape(image)}" '
                 f'alt="{html.escape(caption)}"></a>')
  if text:
    parts.append(f"<pre>{html.escape(text)}</pre>")
  parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
  return "".join(parts)


def _table_html(rows: Sequence[dict]) -> str:
  keys = list(dict.fromkeys(k for row in rows for k in row))
  head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(k, '')))}</td>" for k in keys)
                 + "</tr>" for row in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(workdir, title: str, config, sections: Iterable[Section],
                 summary: dict | None = None) -> Path:
  """Writes workdir/report.html: title, summary figures, sections of images/text, the config."""
  workdir = Path(workdir)
  config_text = config.to_json_best_effort(indent=2) if hasattr(config, "to_json_best_effort") \
      else json.dumps(config, indent=2, default=str)
  parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p>{datetime.datetime.now().isoformat(timespec='seconds')} &middot; "
           f"{html.escape(str(workdir))}</p>"]
  if summary:
    parts.append("<h2>Summary</h2>" + _table_html([summary]))
  for heading, items in sections:
    parts.append(f"<h2>{html.escape(heading)}</h2>")
    parts.extend(_item_html(*item) for item in items)
  metrics = read_metrics(workdir)
  if metrics:
    parts.append("<h2>Metrics</h2>" + _table_html(metrics[-50:]))
  parts.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre></body></html>")
  path = workdir / "report.html"
  _write_atomic(path, "\n".join(parts))
  return path


def write_index(root) -> Path:
  """Writes root/index.html linking every report.html below root, newest first."""
  root = Path(root)
  reports = sorted(root.rglob("report.html"), key=lambda p: p.stat().st_mtime, reverse=True)
  rows = []
  for report in reports:
    rel = report.relative_to(root).as_posix()
    config_path = report.parent / "config.json"
    experiment = ""
    if config_path.exists():
      experiment = json.loads(config_path.read_text()).get("experiment", "")
    when = datetime.datetime.fromtimestamp(report.stat().st_mtime).isoformat(timespec="seconds")
    rows.append(f"<tr><td style='text-align:left'><a href='{html.escape(rel)}'>"
                f"{html.escape(str(report.parent.relative_to(root)))}</a></td>"
                f"<td>{html.escape(experiment)}</td><td>{when}</td></tr>")
  page = (f"<!doctype html><html><head><meta charset='utf-8'><title>cnn_vis runs</title>"
          f"<style>{_STYLE}</style></head><body><h1>Runs under {html.escape(str(root))}</h1>"
          f"<table><tr><th>run</th><th>experiment</th><th>written</th></tr>{''.join(rows)}"
          f"</table></body></html>")
  path = root / "index.html"
  _write_atomic(path, page)
  return path
