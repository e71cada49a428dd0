"""Packed formats and compact/sparse conv kernels against their references and conv2d_simple."""

import time
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.compact_conv as compact_conv
from kernels.compact_conv import (
    conv_channel_compact,
    conv_channel_compact_numba,
    conv_channel_compact_ref,
    conv_column_compact,
    conv_column_compact_numba,
    conv_column_compact_ref,
    conv_filter_compact_numba,
    conv_filter_compact_ref,
    gather_im2col_numba,
    gather_im2col_ref,
    shift_add_numba,
    shift_add_ref,
)
from kernels._dispatch import threads_for
from kernels.im2col import conv2d_simple, conv_geometry, im2col_ref
from kernels.packed import ChannelPacked, ColumnPacked, CSRPacked, FilterPacked
from kernels.sparse_conv import sparse_conv_numba, sparse_conv_ref
from kernels.winograd import winograd_applies

FAST = settings(max_examples=25, deadline=None)
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
KINDS = ("filter", "channel", "column", "irregular")
PACKED = {"filter": FilterPacked, "channel": ChannelPacked, "column": ColumnPacked,
          "irregular": CSRPacked}


def group_shape(kind, shape):
    f, c, kh, kw = shape
    return {"filter": (f, 1, 1, 1), "channel": (1, c, 1, 1), "column": (1, c, kh, kw),
            "irregular": shape}[kind]


def make_mask(rng, kind, shape, pruning):
    """An elementwise mask of ``kind`` groups: none pruned, all but one, or a random half."""
    groups = group_shape(kind, shape)
    n = int(np.prod(groups))
    if pruning == "none":
        keep = np.ones(n, bool)
    elif pruning == "all but one":
        keep = np.zeros(n, bool)
        keep[rng.integers(n)] = True
    else:
        keep = rng.random(n) < 0.5
    return np.broadcast_to(keep.reshape(groups), shape).copy()


@st.composite
def conv_cases(draw):
    """Shapes, stride, padding and a mask; kernel sizes and paddings of any combination."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 9))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kind = draw(st.sampled_from(KINDS))
    pruning = draw(st.sampled_from(["none", "all but one", "random"]))
    return (n, c, h, w), (f, c, kh, kw), stride, padding, kind, pruning, draw(st.integers(0, 2**16))


def arrays(case, dtype):
    x_shape, w_shape, stride, padding, kind, pruning, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    mask = make_mask(rng, kind, w_shape, pruning)
    return x, w, b, mask, stride, padding


@FAST
@given(case=conv_cases())
def test_packed_formats_round_trip(case):
    _, w, _, mask, _, _ = arrays(case, np.float64)
    for packed_type in PACKED.values():
        np.testing.assert_array_equal(packed_type.from_dense(w, mask).to_dense(), w * mask)


@FAST
@given(case=conv_cases())
def test_packed_keeps_only_the_surviving_groups(case):
    _, w, _, mask, _, _ = arrays(case, np.float64)
    f = w.shape[0]
    assert FilterPacked.from_dense(w, mask).weight.shape[0] == mask.reshape(f, -1).any(1).sum()
    assert ChannelPacked.from_dense(w, mask).weight.shape[1] == mask.any(axis=(0, 2, 3)).sum()
    assert ColumnPacked.from_dense(w, mask).weight.shape[1] == mask.reshape(f, -1).any(0).sum()
    assert CSRPacked.from_dense(w, mask).nnz == np.count_nonzero(w * mask)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=conv_cases())
def test_filter_compact_equals_reference_and_conv2d_simple(dtype, case):
    x, w, b, mask, stride, padding = arrays(case, dtype)
    packed = FilterPacked.from_dense(w, mask)
    expected = conv2d_simple(x, w * mask, b, stride, padding)[:, packed.kept]
    ref = conv_filter_compact_ref(x, packed, b[packed.kept], stride, padding)
    np.testing.assert_allclose(ref, expected, **TOL[dtype])
    for algorithm in compact_conv.FILTER_ALGORITHMS:  # each of the Numba version's
        if not applies(algorithm, x, packed.weight, stride, padding):
            with pytest.raises(ValueError, match="does not apply here.*needs stride 1"):
                conv_filter_compact_numba(x, packed, b[packed.kept], stride, padding, algorithm)
            continue
        fast = conv_filter_compact_numba(x, packed, b[packed.kept], stride, padding, algorithm)
        np.testing.assert_allclose(fast, ref, **TOL[dtype])
    np.testing.assert_allclose(conv_filter_compact_numba(x, packed, b[packed.kept], stride,
                                                         padding), ref, **TOL[dtype])


def applies(algorithm, x, weight, stride, padding):
    """Whether the Numba version has ``algorithm`` for this call (kn2row and gather: always;
    direct: stride 1; winograd: ``kernels.winograd.winograd_applies``)."""
    g = conv_geometry("test", x.shape, weight.shape[2], weight.shape[3], stride, padding)
    if algorithm == "winograd":
        return winograd_applies(weight.shape, g, x.dtype, weight.dtype)
    return algorithm != "direct" or (g.sh, g.sw) == (1, 1)


def test_filter_compact_times_its_algorithms_once_per_shape():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 4, 3, 3)).astype(np.float32)
    mask = np.zeros(w.shape, bool)
    mask[::2] = True
    packed = FilterPacked.from_dense(w, mask)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)  # "same" conv: kn2row may pay
    calls = []
    real = compact_conv._fastest
    def record(runs):
        calls.append(sorted(runs))
        return real(runs)

    with patch.object(compact_conv, "_fastest", record):
        first = conv_filter_compact_numba(x, packed, None, 1, 1)
        second = conv_filter_compact_numba(x, packed, None, 1, 1)
        conv_filter_compact_numba(x[:1], packed, None, 1, 1)  # another shape: timed again
    # kn2row, gather, direct and winograd (float32, 3x3), timed for each of the two
    # shapes, not for the repeat
    assert calls == [["direct", "gather", "kn2row", "winograd"]] * 2
    chosen = compact_conv.chosen_algorithms(packed)
    assert len(chosen) == 2 and set(chosen) <= set(compact_conv.FILTER_ALGORITHMS)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        conv_filter_compact_numba(x, packed, None, 1, 1, "fft")


@pytest.mark.parametrize("kind", ["filter", "channel", "column"])
@pytest.mark.parametrize("algorithm", ["gather", "direct"])
def test_a_remembered_run_follows_the_bias_it_was_given(kind, algorithm):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    mask = make_mask(rng, kind, w.shape, "half")
    packed = PACKED[kind].from_dense(w, mask)
    conv = {"filter": conv_filter_compact_numba, "channel": conv_channel_compact_numba,
            "column": conv_column_compact_numba}[kind]
    n_out = len(packed.kept) if kind == "filter" else w.shape[0]
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)

    def expected(b):
        full = np.zeros(w.shape[0], np.float32)
        full[packed.kept if kind == "filter" else slice(None)] = b
        out = conv2d_simple(x, w * mask, full, 1, 1)
        return out[:, packed.kept] if kind == "filter" else out

    with patch.object(compact_conv, "_fastest", lambda runs: algorithm):
        np.testing.assert_allclose(conv(x, packed, bias, 1, 1), expected(bias), **TOL[np.float32])
    remembered = [k for k in packed._cache if k[1] == "call"]
    assert len(remembered) == 1 and packed._cache[remembered[0]][0] is bias
    with patch.object(compact_conv, "_check_input", side_effect=AssertionError("checked")):
        again = conv(x, packed, bias, 1, 1)  # the remembered run: no checks
    np.testing.assert_allclose(again, expected(bias), **TOL[np.float32])
    bias += 1.0  # changed in place: the remembered run reads the caller's array
    np.testing.assert_allclose(conv(x, packed, bias, 1, 1), expected(bias), **TOL[np.float32])
    other = -bias  # another array: checked again, remembered in its place
    np.testing.assert_allclose(conv(x, packed, other, 1, 1), expected(other), **TOL[np.float32])
    assert packed._cache[remembered[0]][0] is other
    wide = bias.astype(np.float64)  # converted to float32: a copy, so never remembered
    np.testing.assert_allclose(conv(x, packed, wide, 1, 1), expected(bias), **TOL[np.float32])
    assert packed._cache[remembered[0]][0] is other
    wide += 1.0
    np.testing.assert_allclose(conv(x, packed, wide, 1, 1), expected(bias + 1),
                               **TOL[np.float32])
    with pytest.raises(ValueError, match="channels"):  # another shape is checked again
        conv(x[:, :2], packed, bias, 1, 1)
    x64 = x.astype(np.float64)  # a float64 input: float64 output, the float32 bias widened
    np.testing.assert_allclose(conv(x64, packed, bias, 1, 1), expected(bias), **TOL[np.float32])
    bias += 1.0
    np.testing.assert_allclose(conv(x64, packed, bias, 1, 1), expected(bias), **TOL[np.float32])


def test_fastest_picks_the_fastest_and_times_every_candidate_in_turn():
    order = []
    runs = {name: (lambda name=name, pause=pause: order.append(name) or time.sleep(pause))
            for name, pause in [("slow", 2e-3), ("fast", 0.0), ("slower", 4e-3)]}
    assert compact_conv._fastest(runs, rounds=3) == "fast"
    assert order[:3] == ["slow", "fast", "slower"]  # one untimed call each
    assert order[3:] == ["slow", "fast", "slower", "fast", "slower", "slow",
                         "slower", "slow", "fast"]  # the order rotates each round


def test_fastest_runs_the_other_layer_before_every_timed_call():
    order = []
    runs = {name: (lambda name=name: order.append(name)) for name in ("a", "b")}
    compact_conv._fastest(runs, rounds=2, between=lambda: order.append("-"))
    # the untimed first calls, then "-" before each of the four timed ones
    assert order == ["a", "b", "-", "a", "-", "b", "-", "b", "-", "a"]
    compact_conv.other_layer()  # the default: a small loop on every Numba thread
    assert np.isfinite(compact_conv._OTHER_LAYER_BUFFER).all()


def test_fastest_keeps_the_direct_conv_unless_another_is_clearly_faster():
    def runs(**pauses):
        return {name: (lambda pause=pause: time.sleep(pause)) for name, pause in pauses.items()}
    # 5% faster is within the margin: the direct conv stays
    assert compact_conv._fastest(runs(direct=20e-3, gather=19e-3), rounds=2) == "direct"
    assert compact_conv._fastest(runs(direct=20e-3, gather=10e-3), rounds=2) == "gather"
    assert compact_conv._fastest(runs(direct=20e-3, gather=19e-3), rounds=2,
                                 prefer=None) == "gather"
    assert compact_conv._fastest(runs(kn2row=5e-3, gather=1e-3), rounds=2) == "gather"


def test_fastest_times_a_win_over_the_direct_conv_again_before_taking_it():
    calls = {"direct": 0, "gather": 0, "kn2row": 0}

    def run(name, pauses):  # pauses[i]: the i-th call's pause, the last one from then on
        def call():
            pause = pauses[min(calls[name], len(pauses) - 1)]
            calls[name] += 1
            time.sleep(pause)
        return call

    # gather looks fast during the first timing (a burst of other work slowed the direct
    # conv's calls, say) but not during the second: the direct conv stays
    burst = {"direct": run("direct", [10e-3]),
             "gather": run("gather", [2e-3] * 3 + [20e-3]),
             "kn2row": run("kn2row", [30e-3])}
    assert compact_conv._fastest(burst, rounds=2, between=None) == "direct"
    # the second timing is of the two alone: one untimed call and two rounds more each
    assert calls == {"direct": 6, "gather": 6, "kn2row": 3}
    # a win that holds twice is taken
    calls.update(direct=0, gather=0)
    steady = {"direct": run("direct", [10e-3]), "gather": run("gather", [2e-3])}
    assert compact_conv._fastest(steady, rounds=2, between=None) == "gather"
    assert calls == {"direct": 6, "gather": 6, "kn2row": 3}
    # no second timing where the direct conv wins or is not a candidate
    calls.update(direct=0, gather=0)
    assert compact_conv._fastest({"direct": run("direct", [1e-3]),
                                  "gather": run("gather", [10e-3])}, rounds=2,
                                 between=None) == "direct"
    assert calls["direct"] == calls["gather"] == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=conv_cases())
def test_channel_compact_equals_reference_and_conv2d_simple(dtype, case):
    x, w, b, mask, stride, padding = arrays(case, dtype)
    packed = ChannelPacked.from_dense(w, mask)
    expected = conv2d_simple(x, w * mask, b, stride, padding)
    np.testing.assert_allclose(conv_channel_compact_ref(x, packed, b, stride, padding), expected,
                               **TOL[dtype])
    np.testing.assert_allclose(conv_channel_compact(x, packed, b, stride, padding), expected,
                               **TOL[dtype])
    for algorithm in compact_conv.CHANNEL_ALGORITHMS:
        if not applies(algorithm, x, packed.weight, stride, padding):
            continue  # the error is tested with the filter kernel
        fast = conv_channel_compact_numba(x, packed, b, stride, padding, algorithm)
        np.testing.assert_allclose(fast, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=conv_cases())
def test_column_compact_equals_reference_and_conv2d_simple(dtype, case):
    x, w, b, mask, stride, padding = arrays(case, dtype)
    packed = ColumnPacked.from_dense(w, mask)
    expected = conv2d_simple(x, w * mask, b, stride, padding)
    np.testing.assert_allclose(conv_column_compact_ref(x, packed, b, stride, padding), expected,
                               **TOL[dtype])
    np.testing.assert_allclose(conv_column_compact(x, packed, b, stride, padding), expected,
                               **TOL[dtype])
    for algorithm in compact_conv.GATHER_ALGORITHMS:
        if algorithm == "direct" and stride != (1, 1):
            continue  # the error is tested with the filter kernel
        fast = conv_column_compact_numba(x, packed, b, stride, padding, algorithm)
        np.testing.assert_allclose(fast, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=conv_cases())
def test_sparse_conv_equals_reference_and_conv2d_simple(dtype, case):
    x, w, b, mask, stride, padding = arrays(case, dtype)
    csr = CSRPacked.from_dense(w, mask)
    expected = conv2d_simple(x, w * mask, b, stride, padding)
    np.testing.assert_allclose(sparse_conv_ref(x, csr, b, stride, padding), expected, **TOL[dtype])
    np.testing.assert_allclose(sparse_conv_numba(x, csr, b, stride, padding), expected,
                               **TOL[dtype])


@FAST
@given(case=conv_cases())
def test_gather_im2col_builds_the_kept_rows_of_im2col(case):
    x, w, _, mask, stride, padding = arrays(case, np.float64)
    table = ColumnPacked.from_dense(w, mask).table
    kh, kw = w.shape[2:]
    cols = gather_im2col_numba(x, table, kh, kw, stride, padding)
    np.testing.assert_array_equal(cols, gather_im2col_ref(x, table, kh, kw, stride, padding))
    full = im2col_ref(x, kh, kw, stride, padding)  # (N*OH*OW, C*kh*kw)
    kept = np.ravel_multi_index(tuple(table.T), w.shape[1:])
    expected = full[:, kept].reshape(x.shape[0], cols.shape[2], len(kept)).transpose(0, 2, 1)
    np.testing.assert_array_equal(cols, expected)


@FAST
@given(case=conv_cases())
def test_shift_add_numba_equals_ref(case):
    x, w, b, _, stride, padding = arrays(case, np.float64)
    g = conv_geometry("test", x.shape, w.shape[2], w.shape[3], stride, padding)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((x.shape[0], w.shape[0], g.kh, g.kw, *x.shape[2:]))
    np.testing.assert_allclose(shift_add_numba(y, b, g), shift_add_ref(y, b, g), rtol=1e-12,
                               atol=1e-12)


def test_blocked_paths_at_larger_shapes(monkeypatch):
    """The sparse kernel over many pixel tiles on both threads; kn2row in many chunks."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 40, 50, 47)).astype(np.float32)
    w = rng.standard_normal((37, 40, 3, 3)).astype(np.float32)
    b = rng.standard_normal(37).astype(np.float32)
    mask = rng.random(w.shape) < 0.1
    expected = conv2d_simple(x, w * mask, b, 1, 1)
    np.testing.assert_allclose(sparse_conv_numba(x, CSRPacked.from_dense(w, mask), b, 1, 1),
                               expected, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(compact_conv, "KN2ROW_CHUNK_BYTES", 3 * 9 * 50 * 47 * 4)
    packed = FilterPacked.from_dense(w, mask)
    np.testing.assert_allclose(conv_filter_compact_numba(x, packed, b, 1, 1), expected,
                               rtol=1e-4, atol=1e-4)


def test_bad_inputs_are_refused_where_they_enter():
    w = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="mask must have the weight's shape"):
        FilterPacked.from_dense(w, np.ones((2, 3, 3), bool))
    with pytest.raises(ValueError, match="4-D"):
        CSRPacked.from_dense(np.ones((2, 3, 3)), None)
    with pytest.raises(ValueError, match="needs the CSR of a 4-D conv weight"):
        sparse_conv_numba(np.ones((1, 3, 5, 5), np.float32), CSRPacked.from_dense(np.ones((2, 3))))
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="input has 4 channels, the weight expects 3"):
        conv_column_compact(x, ColumnPacked.from_dense(w))
    with pytest.raises(ValueError, match="bias"):
        sparse_conv_numba(x[:, :3], CSRPacked.from_dense(w), np.ones(5, np.float32))
    with pytest.raises(ValueError, match="gather table"):
        gather_im2col_numba(x, np.array([[4, 0, 0]]), 3, 3)


def test_small_kernels_run_on_one_thread_and_restore_the_thread_count():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with threads_for(10):
        assert numba.get_num_threads() == 1
    with threads_for(1 << 30):
        assert numba.get_num_threads() == before


def test_one_thread_sets_the_count_through_numbas_c_calls(monkeypatch):
    numba = pytest.importorskip("numba")
    from numba.np.ufunc import parallel

    from kernels import _dispatch

    before = numba.get_num_threads()

    def public(*args):
        raise AssertionError("the checked public call")

    # the C calls under numba.get/set_num_threads, not those (their checks cost ~7 us)
    monkeypatch.setattr(numba, "get_num_threads", public)
    monkeypatch.setattr(numba, "set_num_threads", public)
    monkeypatch.setattr(_dispatch._OneThread, "calls", None)  # looked up again, on entry
    with threads_for(10):
        assert parallel._get_num_threads() == 1
    assert parallel._get_num_threads() == before
    monkeypatch.undo()
    # a Numba without those internals: the public calls serve
    monkeypatch.delattr(parallel, "_set_num_threads")
    assert _dispatch._thread_count_calls() == (numba.get_num_threads, numba.set_num_threads)
    assert numba.get_num_threads() == before
