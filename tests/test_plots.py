"""`sgbench plot` and `sgbench report`, from records of real (short) runs."""
import os
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.results.plots import ACROSS_TASKS, KINDS, TEXT_PT, pareto_front, style
from sgbench.record import load_records
from sgbench.train import RunRequest, run

TAB_BLUE = (0x1F, 0x77, 0xB4)  # matplotlib's first colour: the first line of accuracy-vs-T
TABLE_HEADER = (0xDD, 0xE6, 0xF2)  # the report's table header background


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for method in ("atan", "rect"):
        for T in (1, 2):
            for seed in (0, 1):
                run(RunRequest(method=method, task="synthetic", T=T, seed=seed, epochs=2,
                               device="cpu", out_dir=folder, latency_repeats=1))
    return folder


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _pixels(path):
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    return (image[..., :3] * 255).round().astype(int) if image.dtype != np.uint8 \
        else image[..., :3].astype(int)


def _has_colour(pixels, rgb, tolerance=6) -> bool:
    return bool((np.abs(pixels - np.array(rgb)).max(-1) <= tolerance).any())


@pytest.fixture(scope="module")
def two_tasks(runs, tmp_path_factory):
    """The runs, and a copy of them as a second task with the methods' order reversed."""
    import json

    folder = tmp_path_factory.mktemp("two_tasks")
    for path in runs.glob("*.json"):
        record = json.loads(path.read_text())
        shutil.copy(path, folder / path.name)
        record["task"]["name"] = "synthetic_b"
        record["metrics"]["top1"] = 100 - record["metrics"]["top1"]
        (folder / f"b_{path.name}").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_every_plot_kind_renders_a_non_empty_image(runs, two_tasks, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    folder = two_tasks if kind in ACROSS_TASKS else runs
    result = invoke("plot", kind, "--runs", folder, "--out", out)
    assert result.exit_code == 0, result.output
    pixels = _pixels(out)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels.std() > 10  # drawn, not blank
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::37]}
    assert len(colours) > 20


def test_svg_by_extension_and_one_chosen_record(runs, tmp_path):
    record = sorted(runs.glob("synthetic_rect_T2_s1_*.json"))[0]
    out = tmp_path / "membrane.svg"
    result = invoke("plot", "membrane", "--record", record, "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "rect on synthetic, T=2, seed 1" in text  # its title names the chosen record


def test_records_keep_the_membrane_histogram_and_support(runs):
    record = next(r for r in load_records(runs)[0] if r["method"]["name"] == "rect")
    snapshot = record["diagnostics"]["snapshots"][-1]
    probe = record["diagnostics"]["probe"]
    for layer in snapshot["layers"]:
        hist = layer["h_hist"]
        assert hist["bins"] == len(hist["counts"]) == 60
        assert hist["range"] == [-3.0, 3.0]
        left, right = layer["p"][0][0], layer["p"][0][1]
        assert layer["support"][0] == [-left, right]  # rect: [-left, right] around theta
        total = hist["below"] + hist["above"] + sum(hist["counts"])
        assert total % (record["T"] * probe["size"]) == 0  # every neuron, every step
        # the share of the histogram inside the support agrees with the recorded coverage
        width = 6.0 / 60
        inside = sum(c for i, c in enumerate(hist["counts"])
                     if -left <= -3.0 + width * (i + 0.5) <= right)
        own = sum(layer["coverage"]) / len(layer["coverage"])
        assert inside / total == pytest.approx(own, abs=0.1)


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 80.0), (2.0, 85.0), (2.5, 84.0), (3.0, 90.0), (0.5, 60.0), (4.0, 90.0)]
    assert pareto_front(points) == [(0.5, 60.0), (1.0, 80.0), (2.0, 85.0), (3.0, 90.0)]


@pytest.mark.parametrize("args,needle", [
    (["plot", "acuracy-vs-T"], "did you mean 'accuracy-vs-T'"),
    (["plot", "pareto", "--out", "x.jpg"], "must end in .png, .svg, .pdf"),
    (["plot", "firing", "--method", "superspike"], "no finished record with diagnostics"),
    (["plot", "pareto", "--task", "cifar10"], "no finished records of task 'cifar10'"),
])
def test_plot_mistakes_are_one_line_errors(runs, tmp_path, args, needle):
    result = invoke(*args, "--runs", runs) if "--out" in args or args[1] != "acuracy-vs-T" \
        else invoke(*args)
    assert result.exit_code != 0 and needle in result.output, result.output
    assert isinstance(result.exception, SystemExit)


def test_report_writes_a_page_with_tables_and_images(runs, tmp_path):
    site = tmp_path / "site"
    result = invoke("report", "--runs", runs, "--out", site)
    assert result.exit_code == 0, result.output
    page = (site / "index.html").read_text()
    assert "<script" not in page
    assert page.count("<table") == 2  # the synthetic leaderboard and the published numbers
    assert "atan" in page and "rect" in page and "primary" in page  # an evidence level
    assert "Δ atan [95 % CI]" in page and "p (Holm)" in page and "<th>rank" in page
    images = [part.split('"')[0] for part in page.split('src="')[1:]]
    # rank, pareto, curves, accuracy-vs-T (two T) and grad-decay (T=2 keeps two steps), then
    # three for each of the 4 rows
    assert len(images) == 5 + 4 * 3 and "img/synthetic_grad-decay.png" in page
    assert all((site / src).is_file() and (site / src).stat().st_size > 1000 for src in images)
    # each row's figures come from that row's own records, which the page links
    rect_T1 = sorted(runs.glob("synthetic_rect_T1_s0_*.json"))[0].stem
    assert f"img/{rect_T1}_firing.png" in page and f'href="records/{rect_T1}.json"' in page
    assert (site / "records" / f"{rect_T1}.json").is_file()
    assert "commit" in page and "torch threads" in page and "Recipe" in page


def test_a_method_keeps_its_colour_and_marker_everywhere():
    assert style("atan") == style("atan (alpha=4.0)") == style("atan @1a2b3c4")
    built_in = {tuple(style(m).items()) for m in ("atan", "rect", "triangle", "sigmoid",
                                                   "superspike", "slayer", "mpd_agl", "ds_atgo",
                                                   "adali", "a2sg", "st_asg", "psg_pda",
                                                   "dspike", "localzo", "trsg")}
    assert len(built_in) == 15  # all distinct
    assert style("my_plugin") == style("my_plugin")


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
def test_report_shows_its_table_and_plots_in_headless_chromium(runs, tmp_path):
    site = tmp_path / "site"
    assert invoke("report", "--runs", runs, "--out", site).exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                    "--window-size=1280,2400", f"--screenshot={shot}",
                    (site / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120,
                   env={**os.environ, "HOME": str(tmp_path)})
    pixels = _pixels(shot)
    assert _has_colour(pixels, TABLE_HEADER)  # the leaderboard's header row is on screen
    assert _has_colour(pixels, TAB_BLUE, tolerance=10)  # and the plots' lines


MEASURE = """<script>
window.addEventListener('load', () => {
  const page = document.documentElement;
  const images = [...document.images].map(i => [i.getAttribute('src'), i.clientWidth,
                                                i.naturalWidth]);
  const out = document.createElement('pre');
  out.id = 'measured';
  const boxes = [...document.querySelectorAll('.leaderboard')].map(b => b.scrollWidth -
                                                                        b.clientWidth);
  out.textContent = JSON.stringify({scroll: page.scrollWidth, width: page.clientWidth, images,
                                    boxes});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
@pytest.mark.parametrize("width", [1366, 800])
def test_report_never_scrolls_sideways_and_its_figure_text_stays_legible(runs, tmp_path, width):
    """In headless Chromium at 1366 and 800 px: the page is no wider than the window, and every
    figure is shown at a scale where its smallest text (TEXT_PT at the report's DPI) is at
    least 9 CSS pixels. The page has no script: a copy with a measuring one is opened."""
    import html
    import json
    import re

    from sgbench.results.report import DPI

    site = tmp_path / "site"
    assert invoke("report", "--runs", runs, "--out", site).exit_code == 0
    page = (site / "index.html").read_text()
    (site / "measure.html").write_text(page.replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--disable-background-networking",
                          f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                          f"--window-size={width},900", "--virtual-time-budget=10000",
                          "--dump-dom", (site / "measure.html").as_uri()],
                         check=True, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(tmp_path)}).stdout
    measured = json.loads(html.unescape(re.search(r'<pre id="measured">(.*?)</pre>', dom,
                                                  re.S).group(1)))
    assert measured["scroll"] <= measured["width"] == width
    assert max(measured["boxes"]) <= 1  # no table is cut off at the page's edge
    assert len(measured["images"]) == 17
    for src, shown, natural in measured["images"]:
        assert natural > 0, f"{src} did not load"
        assert shown / natural * TEXT_PT * DPI / 72 >= 9, (src, shown, natural)


@pytest.mark.parametrize("kind", KINDS)
def test_no_figure_text_is_smaller_than_the_legible_size(runs, two_tasks, tmp_path, kind,
                                                         monkeypatch):
    """Every visible text of every figure kind is at least TEXT_PT points."""
    import matplotlib.figure
    import matplotlib.text

    sizes = []
    original = matplotlib.figure.Figure.savefig

    def inspecting(fig, *args, **kwargs):
        fig.canvas.draw()  # tick labels exist once drawn
        sizes.extend(t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
                     if t.get_visible() and t.get_text().strip())
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", inspecting)
    folder = two_tasks if kind in ACROSS_TASKS else runs
    result = invoke("plot", kind, "--runs", folder, "--out", tmp_path / f"{kind}.png")
    assert result.exit_code == 0, result.output
    assert sizes and min(sizes) >= TEXT_PT
