"""Run a tutorial notebook without Jupyter, the way the test suite does.

    python tutorials/run.py tutorials/01_projections.ipynb           # the full budget
    python tutorials/run.py --small tutorials/*.ipynb                # the test suite's budget
    python tutorials/run.py --write tutorials/02_admm_lenet5.ipynb   # and keep the outputs

The code cells run in order in one namespace, as a kernel would run them. Printed text
goes to the terminal; figures (``matplotlib.pyplot`` ones, and a ``Figure`` that is a
cell's last expression, as Jupyter shows it) are collected. ``--write`` stores each cell's
text and figures back into the notebook as its outputs, so that the notebook reads well
on a page that cannot run it. ``--small`` sets ``MINIDNN_TUTORIAL_BUDGET=small``: every
notebook reads it and shrinks its data and epochs to seconds.

Jupyter is not needed (nor a dependency): a notebook is JSON, and its cells are Python.
Opening one in Jupyter works as well (``pip install notebook``).
"""
from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BUDGET_ENV = "MINIDNN_TUTORIAL_BUDGET"


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path``; ValueError naming the file if it is not one (nbformat 4)."""
    try:
        notebook = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as a notebook: {exc}") from exc
    if not (isinstance(notebook, dict) and notebook.get("nbformat") == 4
            and isinstance(notebook.get("cells"), list)
            and all(isinstance(c, dict) and "cell_type" in c and "source" in c
                    for c in notebook["cells"])):
        raise ValueError(f"{path}: not a Jupyter notebook of format 4 (a 'cells' list)")
    return notebook


def code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """The notebook's code cells, in order."""
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def source(cell: dict[str, Any]) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _image(fig: Any) -> dict[str, Any]:
    return {"output_type": "display_data", "data": {"image/png": _png(fig), "text/plain":
                                                     ["<Figure>"]}, "metadata": {}}


def run_cell(code: str, namespace: dict[str, Any], name: str, count: int | None = None
             ) -> list[dict[str, Any]]:
    """Run one cell's code in ``namespace``; return its outputs in the notebook format
    (the printed text, then the figures; a last expression that is not ``None`` is shown
    as Jupyter shows it, its execution count ``count``). An error propagates, naming the
    cell; figures left open before the cell are the caller's to close."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    tree = ast.parse(code, filename=name)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    text, outer = io.StringIO(), sys.stdout

    class Tee(io.TextIOBase):  # the terminal (the stdout before) sees the text as it comes
        def write(self, s: str) -> int:
            outer.write(s)
            return text.write(s)

    value = None
    try:
        with contextlib.redirect_stdout(Tee()):
            exec(compile(tree, name, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, name, "eval"), namespace)
    except BaseException:
        plt.close("all")  # the next run starts without this cell's figures
        raise
    outputs: list[dict[str, Any]] = []
    if text.getvalue():
        outputs.append({"output_type": "stream", "name": "stdout",
                        "text": text.getvalue().splitlines(keepends=True)})
    shown = [plt.figure(n) for n in plt.get_fignums()]
    outputs += [_image(fig) for fig in shown]
    plt.close("all")
    if isinstance(value, Figure):
        if value not in shown:
            outputs.append(_image(value))
    elif value is not None:
        print(repr(value))
        outputs.append({"output_type": "execute_result", "execution_count": count,
                        "data": {"text/plain": repr(value).splitlines(keepends=True)},
                        "metadata": {}})
    return outputs


def run_notebook(path: str | os.PathLike, small: bool = False, write: bool = False
                 ) -> dict[str, Any]:
    """Run every code cell of the notebook at ``path``; return the namespace they ran in.

    ``small`` sets the test suite's budget (``MINIDNN_TUTORIAL_BUDGET=small``) while it
    runs; ``write`` stores the outputs into the notebook (atomically: a temporary file,
    then a rename). The cells run with the notebook's folder as the working directory,
    as Jupyter runs them."""
    import minidnn  # noqa: F401  (before NumPy: the thread pools' defaults)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")  # figures of whatever ran before are not this notebook's
    path = Path(path).resolve()
    notebook = read_notebook(path)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    previous_env, previous_dir = os.environ.get(BUDGET_ENV), os.getcwd()
    if small:
        os.environ[BUDGET_ENV] = "small"
    try:
        os.chdir(path.parent)
        for i, cell in enumerate(code_cells(notebook), start=1):
            t0 = time.perf_counter()
            outputs = run_cell(source(cell), namespace, f"{path.name}, code cell {i}", i)
            print(f"[{path.name}: cell {i} ran in {time.perf_counter() - t0:.1f} s]",
                  file=sys.stderr)
            cell["outputs"], cell["execution_count"] = outputs, i
    finally:
        os.chdir(previous_dir)
        if previous_env is None:
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = previous_env
    if write:
        tmp = path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return namespace


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="+", help="the .ipynb files to run, in order")
    p.add_argument("--small", action="store_true",
                   help=f"the test suite's budget ({BUDGET_ENV}=small): seconds, not minutes")
    p.add_argument("--write", action="store_true", help="store the outputs in the notebooks")
    args = p.parse_args(argv)
    for nb in args.notebooks:
        if not Path(nb).is_file():
            p.error(f"no such notebook: {nb}")
        try:
            read_notebook(Path(nb))
        except ValueError as exc:
            p.error(str(exc))
    for nb in args.notebooks:
        t0 = time.perf_counter()
        run_notebook(nb, small=args.small, write=args.write)
        print(f"[{nb}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
