"""The tutorial notebooks run end to end on the test budget, and their runner works.

Each notebook runs through ``tutorials/run.py`` (no Jupyter) with
``MINIDNN_TUTORIAL_BUDGET=small``; its own ``assert`` cells check what it demonstrates
(exact projections, compact outputs equal to the masked model's, masks that hold), and
the tests below check what it computed against what the text says it shows.
"""
import ast
import base64
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def _runner():
    spec = importlib.util.spec_from_file_location("tutorial_runner", TUTORIALS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _runner()


def test_there_are_six_numbered_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["00_", "01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_imports_minidnn_first(path):
    notebook = run.read_notebook(path)
    assert notebook["nbformat"] == 4
    cells = run.code_cells(notebook)
    assert cells and notebook["cells"][0]["cell_type"] == "markdown"
    for cell in cells:
        ast.parse(run.source(cell))  # every code cell is Python
    first = run.source(cells[0]).lstrip().splitlines()[0]
    assert first.startswith("import minidnn"), first
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == len(ids)
    # stored as run by ``run.py --write`` on the full budget, in order and without errors,
    # so that the notebook reads well where it cannot run
    assert [cell["execution_count"] for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [o for cell in cells for o in cell["outputs"]]
    assert outputs and all(o["output_type"] != "error" for o in outputs)
    text = "".join("".join(o.get("text", [])) for o in outputs)
    assert FULL_BUDGET_MARK[path.name] in text  # not a small-budget run stored


# a line that only the full budget prints, per notebook
FULL_BUDGET_MARK = {
    "00_engine.ipynb": "the hook ran 3 times",  # (one budget only)
    "01_projections.ipynb": "rho 0.3  x1.05",  # (one budget only)
    "02_admm_lenet5.ipynb": "60000 training images",
    "03_compaction_and_speed.ipynb": "50% sparse",
    "04_reproduction_pipeline.ipynb": "train_subset: 20000",
    "05_layer_sensitivity.ipynb": "on 60000 images",
}


def test_engine_notebook():
    ns = run.run_notebook(TUTORIALS / "00_engine.ipynb", small=True)
    np.testing.assert_allclose(ns["z"].grad, 1 / (1 + np.exp(-np.linspace(-3, 3, 7))))
    assert np.allclose(ns["by_hand"], ns["engine"], atol=1e-5)
    assert len(ns["seen"]) == 3 and all(g > 1e-3 for g in ns["seen"])  # the hook ran, then left
    assert not ns["opt"]._pre_hooks


def test_projections_notebook_small():
    ns = run.run_notebook(TUTORIALS / "01_projections.ipynb", small=True)
    # the schedule the text recommends wins most problems, the slow one loses most
    assert ns["wins"][1.0, 1.1] >= 30, ns["wins"]
    assert ns["wins"][0.3, 1.05] < ns["wins"][1.0, 1.1]
    assert ns["residuals"][-1] < 0.1 * ns["residuals"][0]
    # progressive sets: R 0 is the fixed set of the table above; with the fast schedule a
    # ramp wins about as many problems, with the slow one fewer
    ramp = ns["ramp_wins"]
    assert all(ramp[rho, growth, 0] == ns["wins"][rho, growth] for rho, growth in [(1.0, 1.1), (0.1, 1.1)])
    assert all(abs(ramp[1.0, 1.1, r] - ramp[1.0, 1.1, 0]) <= 3 for r in (10, 20)), ramp
    assert all(ramp[0.1, 1.1, r] < ramp[0.1, 1.1, 0] for r in (10, 20)), ramp
    assert os.environ.get(run.BUDGET_ENV) is None  # the budget is not left behind


@pytest.mark.slow
def test_admm_notebook_small(fashion):
    ns = run.run_notebook(TUTORIALS / "02_admm_lenet5.ipynb", small=True)
    assert ns["SMALL"] and len(ns["pruner"].history) == ns["ROUNDS"]
    assert ns["dense_acc"] > 0.6 and ns["admm_acc"] > 0.6 and ns["mag_acc"] > 0.6
    # the paper's observation the text states: ADMM loses less at the hard pruning
    assert ns["admm_hard"] > ns["mag_hard"]
    state = ns["model"].state_dict()
    for name, mask in ns["masks"].items():
        assert not np.any(state[name][~mask.astype(bool)])
    assert ns["stats"]["conv_mac_reduction"] > 4


@pytest.mark.slow
def test_compaction_notebook_small():
    ns = run.run_notebook(TUTORIALS / "03_compaction_and_speed.ipynb", small=True)
    assert {r["kind"] for r in ns["rows"]} == {"filter", "channel", "column"}
    assert all(r["speedup"] > 0 and r["flop_ratio"] > 1 for r in ns["rows"])
    assert [round(d, 2) for d, _ in ns["sparse_rows"]] == [0.3, 0.1, 0.02]
    assert [r["name"] for r in ns["model_rows"]] == ["filter", "channel"]
    # Winograd's conv gives the masked conv's outputs with ~6x fewer multiplications, and
    # a column-pruned kernel keeps none of its zeros through the transform
    assert all(e < 1e-4 for e in ns["wino"]["errors"].values())
    assert 5 < ns["wino"]["mult_ratio"] < 6.25
    assert ns["zeros_before"] == 10 and ns["zeros_after"] == 0


@pytest.mark.slow
def test_pipeline_notebook_small(fashion):
    ns = run.run_notebook(TUTORIALS / "04_reproduction_pipeline.ipynb", small=True)
    admm_row, magnitude_row = ns["admm_row"], ns["magnitude_row"]
    assert (admm_row["method"], magnitude_row["method"]) == ("admm", "magnitude")
    # the same pretraining (the cached dense model) and the same budget after it
    assert admm_row["dense_accuracy"] == magnitude_row["dense_accuracy"]
    assert admm_row["epochs"] == magnitude_row["epochs"]
    assert ns["again"] == admm_row  # the resume found every phase done
    assert [r["name"] for r in ns["results"]["runs"]] == ["demo_admm", "demo_magnitude"]
    assert len(ns["full"]["runs"]) == 22
    # what its text says of the GPU seed study: two of ADMM's six differences resolved,
    # both in its favour, and the filter drop's interval from 0.1 to 1.2 points
    assert ns["resolved"] == [("lenet5_fmnist_filter_admm", "lenet5_fmnist_filter_magnitude"),
                              ("lenet5_fmnist_channel_admm", "lenet5_fmnist_channel_ssl")]
    assert all(p["mean_difference"] < 0 for p in ns["study"]["paired"]
               if (p["first"], p["second"]) in ns["resolved"])
    ci = next(r["drop_ci95"] for r in ns["study"]["runs"] if r["name"] == "lenet5_fmnist_filter_admm")
    assert [round(100 * v, 1) for v in ci] == [0.1, 1.2]
    # what its text says of the column variants: 53-88% after hard pruning, a within-seed
    # slope of +0.06 pts per 10 points, one pair of ten resolved, against the hard-pruned order
    assert [round(v) for v in ns["hard_range"]] == [53, 88]
    assert round(10 * ns["slope"], 2) == 0.06
    assert ns["resolved_pairs"] == [("column_admm_ramp12", "column_admm_sgd")]
    mean_hard = {n: sum(r["accuracy_after_hard_prune"]) / len(r["seeds"])
                 for n, r in ns["column"].items()}
    assert min(mean_hard, key=mean_hard.get) == "column_admm_ramp12"
    assert max(mean_hard, key=mean_hard.get) == "column_admm_sgd"
    # what its text says of the shapes trained alike: 1.15-2.10 pts below the dense model on
    # every seed, shipped ADMM 0.17 (channel) to 0.29 (filter) pts below its shape, the
    # shipped dense model 1.15 pts short of the cosine one
    gaps = np.concatenate(list(ns["gap"].values()))
    assert len(gaps) == 15 and (round(gaps.min(), 2), round(gaps.max(), 2)) == (1.15, 2.10)
    assert {k: round(v, 2) for k, v in ns["behind"].items()} == {"filter": 0.29, "channel": 0.17}
    assert round(ns["dense_short"], 2) == 1.15
    assert not ns["OUT"].exists()  # the notebook removes its scratch folder


@pytest.mark.slow
def test_sensitivity_notebook_small(fashion):
    ns = run.run_notebook(TUTORIALS / "05_layer_sensitivity.ipynb", small=True)
    curves, keeps = ns["curves"], ns["KEEPS"]
    assert len(curves) == len(ns["CASES"]) and all(len(a) == len(keeps) for a in curves.values())
    # pruning harder does not help: no curve ends above its start (by more than 1 pt),
    # and most fall far (fc1's single weights may hold: a few tenths of a point)
    assert all(a[-1] <= a[0] + 0.01 for a in curves.values())
    assert sum(a[-1] < a[0] - 0.05 for a in curves.values()) >= 4
    # the rule of the text: each chosen keep is the smallest within the tolerance
    for layer, entry in ns["chosen"].items():
        accs = curves[layer, entry["kind"]]
        fine = [k for k, a in zip(keeps, accs) if a >= ns["dense_acc"] - ns["TOLERANCE"]]
        assert entry["keep"] == (min(fine) if fine else 1.0)
    # the notebook leaves the model dense
    state = ns["model"].state_dict()
    assert all(np.array_equal(state[k], v) for k, v in ns["dense_state"].items())


def _notebook(path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# t"]}]
    cells += [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
               "outputs": [], "source": s} for i, s in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def test_runner_collects_text_figures_and_values(tmp_path, capsys):
    path = _notebook(
        tmp_path / "t.ipynb",
        "import os\nprint('hello')\nbudget = os.environ.get('MINIDNN_TUTORIAL_BUDGET')\n"
        "here = os.getcwd()",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n41 + 1",
        "from matplotlib.figure import Figure\nfig = Figure()\nfig.subplots().plot([0, 1])\nfig",
        "x = None\nx")
    import matplotlib.pyplot as plt

    plt.figure()  # open before the notebook: not one of its outputs
    ns = run.run_notebook(path, small=True, write=True)
    assert ns["budget"] == "small" and ns["here"] == str(tmp_path)
    assert not plt.get_fignums()
    assert os.environ.get(run.BUDGET_ENV) is None
    assert os.getcwd() != str(tmp_path)
    assert "hello" in capsys.readouterr().out
    cells = run.code_cells(json.loads(path.read_text()))
    kinds = [[o["output_type"] for o in cell["outputs"]] for cell in cells]
    assert kinds == [["stream"], ["display_data", "execute_result"], ["display_data"], []]
    assert cells[0]["outputs"][0]["text"] == ["hello\n"]
    assert cells[1]["outputs"][1]["data"]["text/plain"] == ["42"]
    assert cells[1]["outputs"][1]["execution_count"] == 2
    png = cells[2]["outputs"][0]["data"]["image/png"]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    assert [cell["execution_count"] for cell in cells] == [1, 2, 3, 4]


def test_runner_error_names_the_cell_and_restores_state(tmp_path, monkeypatch):
    monkeypatch.setenv(run.BUDGET_ENV, "full")
    path = _notebook(tmp_path / "bad.ipynb", "a = 1", "raise RuntimeError('boom')")
    before = path.read_text()
    with pytest.raises(RuntimeError, match="boom") as info:
        run.run_notebook(path, small=True, write=True)
    assert "bad.ipynb, code cell 2" in _filenames(info.value.__traceback__)
    assert os.environ[run.BUDGET_ENV] == "full"
    assert path.read_text() == before  # nothing written after a failure


def _filenames(tb) -> list[str]:
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return names


def test_runner_cli_rejects_a_missing_notebook(tmp_path):
    with pytest.raises(SystemExit):
        run.main([str(tmp_path / "missing.ipynb")])


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"nbformat": 3, "cells": []}',
                                     '{"nbformat": 4, "cells": [{"source": "x"}]}'])
def test_runner_rejects_what_is_not_a_notebook(tmp_path, capsys, content):
    path = tmp_path / "broken.ipynb"
    path.write_text(content)
    with pytest.raises(ValueError, match="broken.ipynb"):
        run.run_notebook(path)
    with pytest.raises(SystemExit):
        run.main([str(path)])
    assert "broken.ipynb" in capsys.readouterr().err
