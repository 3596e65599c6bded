"""The report's interactive map at 300 and 100,000 points: the HTML file's size, the seconds to build it, and the
seconds headless Chromium takes to open it and draw the map, with a screenshot of the map at each size.

Records are real (the shared instruction pools, cycled to the size asked, each copy numbered); two score columns
(seeded uniform) and two selections of 1 % (at least 5: the top of one score, and a seeded random one) are written
as tunesift writes them. Vectors: all-MiniLM-L6-v2 at 300 records; beyond 1,000, each distinct record's MiniLM vector
(some 15,000, embedded once into a store under the temporary folder) with a little noise for each numbered copy
(MiniLM on 100,000 records takes some 20 minutes on 2 cores; the file's size and the drawing do not depend on it)::

    python benchmarks/report_map.py [--sizes 300,100000] [--projection auto] [--screenshots docs]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_mib

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "instruct"
FILES = ("alpaca_random_9k.json", "dolly_alpagasus_3k.json", "code_alpaca_2k.json", "lima_train.json")


def _distinct() -> list[dict]:
    found = []
    for name in FILES:
        for r in json.loads((DATA / name).read_text()):
            if isinstance(r, dict) and r.get("instruction"):
                found.append({"instruction": r["instruction"], "input": r.get("input", ""),
                              "output": r.get("output", "")})  # fmt: skip
    return found


def records(n: int) -> list[dict]:
    found = _distinct()
    return [dict(found[i % len(found)], instruction=f"{found[i % len(found)]['instruction']} ({i // len(found)})")
            if i >= len(found) else found[i] for i in range(n)]  # fmt: skip


def copies_of_real_vectors(n: int) -> np.ndarray:
    """The distinct records' MiniLM vectors (stored once), each numbered copy with noise (sd 0.003), unit length."""
    from tunesift.execution.driver import embed_pool

    distinct = _distinct()
    folder = Path(tempfile.gettempdir()) / "tunesift-bench-report-map"
    folder.mkdir(exist_ok=True)
    (folder / "distinct.json").write_text(json.dumps(distinct))
    base = embed_pool(folder / "distinct.json", store_dir=folder / "store").vectors
    x = base[np.arange(n) % len(base)] + np.random.default_rng(1).normal(0, 0.003, size=(n, base.shape[1]))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def build(n: int, folder: Path, projection: str) -> dict:
    from tunesift import api
    from tunesift.data.pools import read_pool
    from tunesift.report import make_report
    from tunesift.selectors import Selection

    pool_path = folder / "pool.json"
    pool_path.write_text(json.dumps(records(n)))
    rng = np.random.default_rng(0)
    scores = []
    for name in ("ifd", "quality"):
        path = folder / f"{name}.jsonl"
        values = rng.uniform(0, 1, size=n)
        path.write_text("".join(json.dumps({"index": i, name: float(v), "skip_reason": None}) + "\n"
                                for i, v in enumerate(values)))  # fmt: skip
        path.with_name(path.name + ".config.json").write_text(json.dumps({"score_field": name,
                                                                          "config": {"scorer": name}}))  # fmt: skip
        scores.append((path, values))
    pool = read_pool(pool_path)
    table = api.read_scores(scores[0][0], pool)
    k = max(5, n // 100)
    top = [int(i) for i in np.argsort(-scores[0][1])[:k]]
    chance = sorted(int(i) for i in rng.choice(n, size=k, replace=False))
    api.write_subset(folder / "top_ifd.json", pool, table, Selection(top, n, n, n, "top ifd"))
    api.write_subset(folder / "random.json", pool, table, Selection(chance, n, n, n, "random"))
    if n > 1000:  # synthetic vectors in the store's place (see the docstring)
        import tunesift.execution.driver as driver
        from tunesift.scorers.embedding import EmbeddingTable

        synthetic = copies_of_real_vectors(n)
        driver.embed_pool = lambda pool, indices=None, **_: EmbeddingTable(list(indices), synthetic[list(indices)],
                                                                            {"embedder": "synthetic"})  # fmt: skip
    started = time.perf_counter()
    out = folder / "report.html"
    stats = make_report(pool_path, [p for p, _ in scores], [folder / "top_ifd.json", folder / "random.json"], out=out,
                        count_tokens=lambda t: len(t.split()), store_dir=folder / "store", projection=projection,
                        pool_map=True)  # fmt: skip
    return {"seconds": time.perf_counter() - started, "bytes": out.stat().st_size, "out": out,
            "method": stats["map"]["method"], "points": stats["map"]["n_points"], "peak_mib": peak_mib(),
            "first": top[0]}  # fmt: skip


def open_in_chromium(out: Path, screenshot: Path | None, first: int) -> float | None:
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver_path):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,900")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        started = time.perf_counter()
        driver.get(out.as_uri())
        driver.execute_script("return tunesiftMap.drawnMarked();")
        seconds = time.perf_counter() - started
        if screenshot is not None:  # with the tooltip of the first selected record
            from selenium.webdriver.common.action_chains import ActionChains

            box, canvas = driver.find_element("id", "map"), driver.find_element("id", "map-canvas")
            driver.execute_script("arguments[0].scrollIntoView();", box)
            row = driver.execute_script("return tunesiftMap.rowOf(arguments[0]);", first)
            x, y = driver.execute_script("return tunesiftMap.screenOf(arguments[0]);", row)
            size = canvas.size
            ActionChains(driver).move_to_element_with_offset(canvas, round(x - size["width"] / 2),
                                                             round(y - size["height"] / 2)).perform()  # fmt: skip
            box.screenshot(str(screenshot))
        return seconds
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="300,100000")
    parser.add_argument("--projection", default="auto")
    parser.add_argument("--screenshots", type=Path, default=None, help="Folder for map-N.png (e.g. docs).")
    args = parser.parse_args()
    print("| points | projection | build s | peak MiB | HTML MB | MB per 1,000 points | open and draw s |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            r = build(n, Path(tmp), args.projection)
            shot = args.screenshots / f"map-{n}.png" if args.screenshots else None
            opened = open_in_chromium(r["out"], shot, r["first"])
        shown = "–" if opened is None else f"{opened:.1f}"
        print(f"| {r['points']:,} | {r['method'].split(' of ')[0]} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | "
              f"{r['bytes'] / 1e6:.1f} | {r['bytes'] / 1e3 / r['points']:.2f} | {shown} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
