"""The per-run HTML report (`report.html`) and the index of all runs under a folder (`index.html`).

A report shows, in order: the title; the run's facts (command line, config file and argument,
overrides, git commit and whether the tree was dirty, package versions, device, wall time of
every stage; taken from the Run being executed and rendered again with the final times when it
succeeds); the summary figures (the same dict as summary.json); the sections; the metrics; the
config. A section is (heading, items), an item one of
- (caption, image or None, text or None): a figure; the image (a path relative to the workdir)
  is shown as a thumbnail at most THUMBNAIL px wide (small pictures are enlarged without
  smoothing) and links to the full-resolution file;
- Grid: tiles with their labels as HTML text, not burned into the picture (`save_tiles` writes
  one PNG per image and returns the Grid; `labelled_grid` also writes the whole grid as one PNG,
  which the Grid links); a Tile with `href` links elsewhere; a figure whose image is a Grid,
  (caption, Grid, text), shows the grid with the caption and text;
- Table: rows of cells, each a value, a Link or a Tile (a tour's gallery: one row per stage).

The index (`write_index(root)`, `launch.sh report ROOT`): one row per run found below root (a
folder with a status.json or config.json): thumbnail, run, experiment and method, model,
headline figure (summary.json), duration and status (ok / failed and why / running, or stopped
if its process is gone), and for every sweep (a folder with sweep.json) a table comparing the
summary figures of its runs.
"""
import dataclasses
import datetime
import html
import json
import os
import platform
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from cnn_vis import runs
from cnn_vis.report.images import image_grid, save_image
from cnn_vis.runs import read_json, read_metrics

# A report section: (heading, items); an item is (caption, relative image path or None, text or
# None), a Grid, or a Tile.
Item = tuple[str, str | None, str | None]
Section = tuple[str, Sequence]

THUMBNAIL = 480       # widest thumbnail in a report, in CSS pixels
SMALLEST = 128        # pictures narrower than this are enlarged by a whole factor (pixelated)
INDEX_THUMBNAIL = 96  # thumbnail side in the index

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1500px;color:#222}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #ccc;height:auto}
img.px{image-rendering:pixelated}
figcaption{font-size:.85em;max-width:480px}pre{background:#f5f5f5;padding:1em;overflow:auto}
table{border-collapse:collapse;margin:.5em 0}caption{text-align:left;padding:.3em 0}td,th{border:1px solid #ccc;padding:.2em .6em}
td.n{text-align:right}th{background:#f0f0f0}table.facts td:first-child{font-weight:bold}
.grid{display:grid;gap:.4em;margin:.5em 0}.grid figure{margin:0}
.grid figcaption{font-size:.8em;overflow-wrap:anywhere}
p.whole{font-size:.8em;margin:.2em 0}
.ok{color:#161}.failed{color:#a00;font-weight:bold}.running,.stopped{color:#a60}"""


@dataclasses.dataclass(frozen=True)
class Tile:
  """One picture in a Grid: image (relative path), its label as text, and where a click goes
  (default: the full-resolution image)."""
  image: str
  label: str = ""
  href: str | None = None
  title: str = ""


@dataclasses.dataclass(frozen=True)
class Grid:
  """Tiles in `columns` columns (default: as many as fit), each shown `width` CSS px wide;
  `href`: the whole grid as one picture, linked under it."""
  tiles: Sequence[Tile]
  caption: str = ""
  columns: int | None = None
  width: int = 160
  href: str | None = None


@dataclasses.dataclass(frozen=True)
class Link:
  text: str
  href: str


@dataclasses.dataclass(frozen=True)
class Table:
  """Rows (dicts: column -> value, Link or Tile); columns in first-seen order."""
  rows: Sequence[dict]
  caption: str = ""
  width: int = 128   # of the thumbnails of Tile cells


def save_tiles(workdir, folder: str, images, labels: Sequence[str] = (), caption: str = "",
               columns: int | None = None, width: int = 160) -> Grid:
  """Writes each image (N x H x W x 3 in [0, 1]) to workdir/folder/NNN.png at full resolution
  and returns the Grid showing them with their labels as text."""
  tiles = []
  for i, image in enumerate(images):
    rel = f"{folder}/{i:03d}.png"
    save_image(Path(workdir) / rel, image)
    tiles.append(Tile(rel, labels[i] if i < len(labels) else ""))
  return Grid(tuple(tiles), caption, columns, width)


GRID_WIDTH = 1400  # widest a Grid with a fixed number of columns is shown, in CSS pixels


def tile_width(images, columns: int | None = None) -> int:
  """The CSS width of a grid's tiles: the widest tile as a thumbnail shows it, at most
  GRID_WIDTH / columns."""
  widest = max(display_size((np.shape(im)[1], np.shape(im)[0]), THUMBNAIL)[0] for im in images)
  return max(1, min(widest, GRID_WIDTH // columns if columns else THUMBNAIL))


def labelled_grid(workdir, rel: str, images, labels: Sequence[str] = (),
                  columns: int | None = None, pad: int = 2):
  """A labelled grid of pictures (N of HxWx3 in [0, 1], sizes may differ) as a report shows it.

  Writes workdir/rel, the whole grid as one picture (labels burned in, for use outside the
  report), and every picture at full resolution to workdir/tiles/<rel without .png>/NNN.png.
  Returns (the grid picture, the Grid showing the pictures with their labels as HTML text and
  linking the whole picture); put the Grid in a section, or as the image of (caption, Grid,
  text)."""
  images = list(images)
  picture = image_grid(images, ncols=columns, labels=list(labels) or None, pad=pad)
  save_image(Path(workdir) / rel, picture)
  grid = save_tiles(workdir, f"tiles/{Path(rel).with_suffix('').as_posix()}", images, labels,
                    columns=columns, width=tile_width(images, columns))
  return picture, dataclasses.replace(grid, href=rel)


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def _page(title: str, body: Sequence[str]) -> str:
  return "\n".join([f"<!doctype html><html><head><meta charset='utf-8'>"
                    f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
                    f"<h1>{html.escape(title)}</h1>", *body, "</body></html>"])


def _image_size(path: Path) -> tuple[int, int] | None:
  try:
    with Image.open(path) as image:
      return image.size
  except OSError:
    return None


def display_size(natural: tuple[int, int], widest: int) -> tuple[int, int]:
  """(width, height) to show a picture at: its own size, enlarged by a whole factor if narrower
  than SMALLEST, shrunk to `widest` if wider."""
  width, height = natural
  factor = -(-SMALLEST // max(width, 1)) if width < SMALLEST else 1
  shown = min(width * factor, widest)
  return shown, max(1, round(height * shown / max(width, 1)))


def _img(workdir: Path, src: str, alt: str, widest: int, href: str | None = None,
         title: str = "") -> str:
  """A thumbnail of workdir/src linking to the full-resolution file (or href)."""
  natural = _image_size(workdir / src)
  attrs = ""
  if natural:
    shown = display_size(natural, widest)
    attrs = f' width="{shown[0]}" height="{shown[1]}"' + (
        ' class="px"' if shown[0] > natural[0] else "")
  tip = f' title="{html.escape(title)}"' if title else ""
  return (f'<a href="{html.escape(href or src)}"><img src="{html.escape(src)}"{attrs}'
          f' alt="{html.escape(alt)}"{tip} loading="lazy"></a>')


def _item_html(workdir: Path, item) -> str:
  if isinstance(item, Grid):
    return _grid_html(workdir, item)
  if isinstance(item, Table):
    return _rich_table_html(workdir, item)
  if isinstance(item, Tile):
    return _grid_html(workdir, Grid((item,)))
  caption, image, text = item
  parts = ["<figure>"]
  if isinstance(image, Grid):
    parts.append(_grid_html(workdir, image))
  elif image:
    parts.append(_img(workdir, image, caption, THUMBNAIL))
  if text:
    parts.append(f"<pre>{html.escape(text)}</pre>")
  parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
  return "".join(parts)


def _grid_html(workdir: Path, grid: Grid) -> str:
  columns = f"repeat({grid.columns}, {grid.width}px)" if grid.columns else \
      f"repeat(auto-fill, {grid.width}px)"
  picture = lambda t: _img(workdir, t.image, t.label or t.image, grid.width, t.href, t.title)
  cells = "".join(f"<figure>{picture(t)}<figcaption>{html.escape(t.label)}</figcaption></figure>"
                  for t in grid.tiles)
  caption = f"<p>{html.escape(grid.caption)}</p>" if grid.caption else ""
  whole = (f"<p class='whole'>all in one picture: <a href='{html.escape(grid.href)}'>"
           f"{html.escape(grid.href)}</a></p>") if grid.href else ""
  return (f"{caption}<div class='grid' style='grid-template-columns:{columns}'>{cells}</div>"
          f"{whole}")


def _rich_table_html(workdir: Path, table: Table) -> str:
  keys = list(dict.fromkeys(k for row in table.rows for k in row))

  def cell(value) -> str:
    if isinstance(value, Tile):
      return f"<td>{_img(workdir, value.image, value.label, table.width, value.href)}</td>"
    if isinstance(value, Link):
      return f"<td><a href='{html.escape(value.href)}'>{html.escape(value.text)}</a></td>"
    return _cell(value)
  head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
  body = "".join("<tr>" + "".join(cell(row.get(k, "")) for k in keys) + "</tr>"
                 for row in table.rows)
  caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
  return f"<table>{caption}<tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, (list, tuple)):
    return ", ".join(_fmt(v) for v in value)
  if isinstance(value, dict):
    return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
  return str(value)


def _cell(value) -> str:
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  return f"<td{' class=n' if number else ''}>{html.escape(_fmt(value))}</td>"


def _table_html(rows: Sequence[dict]) -> str:
  keys = list(dict.fromkeys(k for row in rows for k in row))
  head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
  body = "".join("<tr>" + "".join(_cell(row.get(k, "")) for k in keys) + "</tr>" for row in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _pairs_html(pairs: Sequence[tuple[str, str]], css: str = "facts") -> str:
  rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in pairs)
  return f"<table class='{css}'>{rows}</table>"


def seconds_text(seconds) -> str:
  if seconds is None:
    return ""
  seconds = float(seconds)
  return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def facts(info: dict) -> list[tuple[str, str]]:
  """The run facts of run.json as (label, text) rows."""
  git = info.get("git") or {}
  commit = git.get("commit")
  git_text = "not a git checkout" if not commit else \
      f"{commit[:12]} ({'dirty: uncommitted changes' if git.get('dirty') else 'clean'})"
  config = info.get("config_file") or ""
  if info.get("config_arg"):
    config += f":{info['config_arg']}"
  devices = info.get("devices") or {}
  stages = info.get("stages") or {}
  total = float(info.get("seconds") or 0) + float(stages.get("prepare", 0))
  rows = [("command", info.get("command", "")), ("config", config or "(given in code)")]
  if info.get("overrides"):
    rows.append(("overrides", " ".join(info["overrides"])))
  if info.get("note"):
    rows.append(("note", info["note"]))
  rows += [("git commit", git_text),
           ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
           ("device", f"{devices.get('count', '?')} x {devices.get('kind', '?')} "
                      f"({devices.get('platform', '?')}), {devices.get('processes', 1)} "
                      f"process(es), host {info.get('host', '?')}"),
           *([("Slurm job", str(info["slurm_job"]))] if info.get("slurm_job") else []),
           ("started", info.get("started", "")),
           ("wall time", seconds_text(total) + (" (" + ", ".join(
               f"{k} {seconds_text(v)}" for k, v in stages.items()) + ")" if stages else ""))]
  return rows


def _report_html(workdir: Path, title: str, config_text: str, sections, summary, info,
                 shown_as: Path | None = None) -> str:
  parts = [f"<p>{html.escape(str(shown_as or workdir))}</p>"]
  if info:
    parts.append("<h2>Run</h2>" + _pairs_html(facts(info)))
  if summary:
    parts.append("<h2>Summary</h2>" + _pairs_html([(k, _fmt(v)) for k, v in summary.items()],
                                                  "summary"))
  for heading, items in sections:
    parts.append(f"<h2>{html.escape(heading)}</h2>")
    parts.extend(_item_html(workdir, item) for item in items)
  metrics = read_metrics(workdir)
  if metrics:
    note = f" (last 50 of {len(metrics)}; all in metrics.jsonl)" if len(metrics) > 50 else ""
    parts.append(f"<h2>Metrics{note}</h2>" + _table_html(metrics[-50:]))
  parts.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
  return _page(title, parts)


def _first_image(sections) -> str | None:
  for _, items in sections:
    for item in items:
      if isinstance(item, Grid) and item.tiles:
        return item.tiles[0].image
      if isinstance(item, Tile):
        return item.image
      if isinstance(item, Table):
        tiles = [v for row in item.rows for v in row.values() if isinstance(v, Tile)]
        if tiles:
          return tiles[0].image
      if isinstance(item, tuple) and len(item) > 1 and isinstance(item[1], Grid):
        if item[1].tiles:
          return item[1].tiles[0].image
      elif isinstance(item, tuple) and len(item) > 1 and item[1]:
        return item[1]
  return None


def write_report(workdir, title: str, config, sections: Iterable[Section],
                 summary: dict | None = None) -> Path:
  """Writes workdir/report.html: title, run facts, summary figures, sections, metrics, config.

  Inside a Run whose dir is workdir, the run's facts come from it, the first picture becomes
  the run's thumbnail (in the index) and the report is rendered again with the final times
  when the run succeeds.
  """
  workdir = Path(workdir)
  sections = [(heading, list(items)) for heading, items in sections]
  config_text = config.to_json_best_effort(indent=2) if hasattr(config, "to_json_best_effort") \
      else json.dumps(config, indent=2, default=str)
  summary = dict(summary) if summary else None
  path = workdir / "report.html"
  run = runs.current_run()
  if run is not None and run.dir.resolve() == workdir.resolve():
    run.title = title
    run.thumbnail = run.thumbnail or _first_image(sections)
    info = run.info()

    def rerender(final: dict) -> None:
      _write_atomic(run.dir / "report.html",
                    _report_html(run.dir, title, config_text, sections,
                                 {**(summary or {}), **run.summary} or None, final, run.workdir))
    run.on_success(rerender)
    shown_as = run.workdir
  else:
    info, shown_as = read_json(workdir / "run.json"), workdir
  _write_atomic(path, _report_html(workdir, title, config_text, sections, summary, info,
                                   shown_as))
  return path


# ------------------------------------------------------------------------------------------------
# The index of runs.

# Summary keys taken as a run's headline figure, in order of preference (a summary may also name
# its own with "headline": "<key>").
HEADLINE_KEYS = ("test_accuracy", "accuracy", "top1_accuracy", "top5_accuracy", "top1_error",
                 "top5_error", "mean_probability", "fooled", "success_rate", "completeness_gap",
                 "normalized_error", "content_loss", "style_loss", "mean_activation")
# Counts and settings, never a headline.
NOT_HEADLINES = ("images", "seconds", "steps", "classes", "settings", "units", "image_size",
                 "iter_n", "octave_n", "positions", "size", "stride", "stages", "seed")


def headline(summary: dict) -> tuple[str, str]:
  """(key, value text) of the figure that stands for a run; ("", "") if it has none."""
  if not summary:
    return "", ""
  named = summary.get("headline")
  if isinstance(named, str) and named in summary:
    return named, _fmt(summary[named])
  for key in HEADLINE_KEYS:
    for candidate, value in summary.items():
      if (candidate == key or candidate.startswith(key + "_")) and _is_number(value):
        return candidate, _fmt(value)
  for key, value in summary.items():
    if _is_number(value) and key not in NOT_HEADLINES and key != "headline":
      return key, _fmt(value)
  return "", ""


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hidden(path: Path, root: Path) -> bool:
  return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_runs(root) -> list[Path]:
  """Every run folder below root (and root itself): one holding status.json or config.json,
  outside hidden folders (staging, submitit logs)."""
  root = Path(root)
  found = {p.parent for name in ("status.json", "config.json") for p in root.rglob(name)}
  return sorted(d for d in found if not _hidden(d, root))


def _alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
    return True
  except (OSError, TypeError, ValueError):
    return False


def run_status(status: dict | None) -> tuple[str, str]:
  """(ok | failed | running | stopped | unknown, detail)."""
  if not status:
    return "unknown", "no status.json"
  state = status.get("status", "unknown")
  if state == "running" and status.get("host") == platform.node() and not _alive(status.get("pid")):
    return "stopped", f"process {status.get('pid')} is gone"
  return state, status.get("error", "")


def run_row(root: Path, folder: Path) -> dict:
  """What the index shows of one run."""
  config = read_json(folder / "config.json", {}) or {}
  summary = read_json(folder / "summary.json", {}) or {}
  info = read_json(folder / "run.json", {}) or {}
  status = read_json(folder / "status.json")
  state, detail = run_status(status)
  seconds = (status or {}).get("seconds", info.get("seconds"))
  prepare = (info.get("stages") or {}).get("prepare", 0)
  key, value = headline(summary)
  name = folder.relative_to(root).as_posix()
  report = folder / "report.html"
  return {"name": "." if name == "." else name, "folder": folder, "state": state,
          "detail": detail, "experiment": config.get("experiment", ""),
          "method": summary.get("method") or config.get("method") or "",
          "model": summary.get("model") or config.get("model") or "",
          "headline": f"{key} {value}".strip(), "summary": summary,
          "seconds": None if seconds is None else float(seconds) + float(prepare or 0),
          "started": info.get("started") or (status or {}).get("time", ""),
          "link": report if report.exists() else (folder / "status.json"),
          "thumbnail": _thumbnail_source(folder, info)}


def _thumbnail_source(folder: Path, info: dict) -> Path | None:
  if info.get("thumbnail") and (folder / info["thumbnail"]).is_file():
    return folder / info["thumbnail"]
  pictures = sorted(folder.glob("*.png")) or sorted(folder.glob("*/*.png"))
  return pictures[0] if pictures else None


def _index_thumbnail(root: Path, source: Path | None) -> str | None:
  """A small copy of source in root/index_thumbs/ (remade when the source is newer)."""
  if source is None:
    return None
  rel = source.relative_to(root).as_posix()
  target = root / "index_thumbs" / (runs.safe_name(rel.replace("/", "__")) + ".png")
  try:
    if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
      target.parent.mkdir(exist_ok=True)
      with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((INDEX_THUMBNAIL, INDEX_THUMBNAIL),
                        Image.NEAREST if image.width < INDEX_THUMBNAIL else Image.LANCZOS)
        if image.width < INDEX_THUMBNAIL // 2:   # tiny renders: enlarge without smoothing
          factor = INDEX_THUMBNAIL // max(image.width, image.height, 1)
          image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
        tmp = target.with_name(f".{target.name}.tmp.png")
        image.save(tmp)
        os.replace(tmp, target)
  except OSError:
    return None
  return target.relative_to(root).as_posix()


def _link(root: Path, target: Path, text: str) -> str:
  return f"<a href='{html.escape(target.relative_to(root).as_posix())}'>{html.escape(text)}</a>"


def _runs_table(root: Path, rows: Sequence[dict]) -> str:
  head = "".join(f"<th>{h}</th>" for h in ("", "run", "experiment", "method", "model",
                                           "headline", "duration", "status", "started"))
  body = []
  for row in rows:
    thumb = _index_thumbnail(root, row["thumbnail"])
    picture = (f"<a href='{html.escape(row['thumbnail'].relative_to(root).as_posix())}'>"
               f"<img src='{html.escape(thumb)}' alt='thumbnail of {html.escape(row['name'])}'>"
               "</a>") if thumb else ""
    status = f"<span class='{row['state']}'>{html.escape(row['state'])}</span>" + (
        f"<br><small>{html.escape(row['detail'])}</small>" if row["detail"] else "")
    body.append(f"<tr><td>{picture}</td><td>{_link(root, row['link'], row['name'])}</td>"
                f"<td>{html.escape(row['experiment'])}</td><td>{html.escape(row['method'])}</td>"
                f"<td>{html.escape(row['model'])}</td><td>{html.escape(row['headline'])}</td>"
                f"<td class=n>{seconds_text(row['seconds'])}</td><td>{status}</td>"
                f"<td>{html.escape(str(row['started']))}</td></tr>")
  return f"<table class='runs'><tr>{head}</tr>{''.join(body)}</table>"


def _comparable(value) -> bool:
  return isinstance(value, (int, float, str, bool)) or (
      isinstance(value, (list, tuple)) and len(value) <= 8)


def _sweep_table(root: Path, sweep_dir: Path, sweep: dict, rows_by_folder: dict) -> str:
  """One row per run of the sweep: its overrides, status and every summary figure."""
  entries = sweep.get("runs") or []
  override_keys = list(dict.fromkeys(k for e in entries for k in (e.get("overrides") or {})))
  rows = [(e, rows_by_folder.get((sweep_dir / e.get("name", "")).resolve())) for e in entries]
  summary_keys = list(dict.fromkeys(k for _, r in rows if r for k, v in r["summary"].items()
                                    if _comparable(v)))
  head = "".join(f"<th>{html.escape(h)}</th>" for h in ["run", "status", *override_keys,
                                                        *summary_keys, "duration"])
  body = []
  for entry, row in rows:
    overrides = entry.get("overrides") or {}
    name = entry.get("name", "?")
    if row is None:
      body.append(f"<tr><td>{html.escape(name)}</td><td>not started</td>" +
                  "".join(_cell(overrides.get(k, "")) for k in override_keys) +
                  "<td></td>" * (len(summary_keys) + 1) + "</tr>")
      continue
    body.append(f"<tr><td>{_link(root, row['link'], name)}</td>"
                f"<td class='{row['state']}'>{html.escape(row['state'])}</td>" +
                "".join(_cell(overrides.get(k, "")) for k in override_keys) +
                "".join(_cell(row["summary"].get(k, "")) for k in summary_keys) +
                f"<td class=n>{seconds_text(row['seconds'])}</td></tr>")
  title = f"{sweep.get('config', '?')} ({sweep.get('executor', '?')} executor)"
  where = sweep_dir.relative_to(root).as_posix()
  where = str(root) if where == "." else where
  return (f"<h2>Sweep {html.escape(title)} in {html.escape(where)}</h2>"
          f"<table class='sweep'><tr>{head}</tr>{''.join(body)}</table>")


def write_index(root) -> Path:
  """Writes root/index.html: every run below root (newest first) and every sweep's comparison."""
  root = Path(root)
  rows = [run_row(root, folder) for folder in find_runs(root)]
  rows.sort(key=lambda r: str(r["started"]), reverse=True)
  parts = [f"<p>{len(rows)} runs, written {datetime.datetime.now().isoformat(timespec='seconds')}"
           "</p>", _runs_table(root, rows)]
  by_folder = {r["folder"].resolve(): r for r in rows}
  for sweep_file in sorted(root.rglob("sweep.json")):
    if not _hidden(sweep_file.parent, root):
      parts.append(_sweep_table(root, sweep_file.parent, read_json(sweep_file, {}) or {},
                                by_folder))
  path = root / "index.html"
  _write_atomic(path, _page(f"cnn_vis runs under {root}", parts))
  return path
