"""The chapters' support code: registry mechanics, validation, reduction, data, training, book helpers."""

from __future__ import annotations

import pytest
import torch

from lossbook import book, data, registry, utils, validation
from lossbook.models import mlp
from lossbook.regression import HuberLoss, huber_loss
from lossbook.train import fit, predict


def test_reduce_loss_empty_batch_is_zero_with_zero_gradient():
    x = torch.zeros(0, requires_grad=True)
    for red in ("mean", "sum"):
        out = utils.reduce_loss(x * 2, red)
        assert float(out.detach()) == 0.0
    out.backward()
    assert x.grad.shape == (0,)


def test_reduce_loss_weighted_mean_with_all_zero_weights_is_zero():
    assert float(utils.reduce_loss(torch.ones(3), "mean", torch.zeros(3))) == 0.0


def test_check_reduction_message():
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        utils.check_reduction("avg")


def test_validation_messages():
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        validation.check_pair([1.0], torch.zeros(1))
    with pytest.raises(ValueError, match=r"target class indices must lie in \[0, 2\] for 3 classes, got values in \[0, 5\]"):
        validation.check_class_target(torch.tensor([0, 5]), 3)
    validation.check_class_target(torch.tensor([0, -100, 2]), 3, ignore_index=-100)
    with pytest.raises(TypeError, match="class-index target must have dtype torch.int64"):
        validation.check_class_target(torch.tensor([0.0]), 3)
    with pytest.raises(ValueError, match=r"must lie in the open interval \(0, 1\)"):
        validation.check_open_unit(1.0, "q")


def test_value_checks_do_not_break_fullgraph_compile():
    def f(t, y):
        validation.check_class_target(y, 3)
        validation.check_values_above(t, 0.0, "t")
        return t.sum()

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    assert float(compiled(torch.ones(2), torch.tensor([0, 2]))) == 2.0


def test_fast_checks_skip_only_the_value_checks():
    import lossbook
    from lossbook.regression import gaussian_nll_loss, huber_loss

    x, y = torch.zeros(3), torch.ones(3)
    bad_var = torch.tensor([1.0, -1.0, 1.0])
    assert validation.get_checks() == "full"
    with pytest.raises(ValueError, match="var"):
        gaussian_nll_loss(x, y, bad_var)
    with lossbook.checks("fast"):
        assert validation.get_checks() == "fast"
        gaussian_nll_loss(x, y, bad_var)  # a tensor value check: skipped, no host sync
        with pytest.raises(ValueError, match="same shape"):  # a static check: still runs
            huber_loss(x, torch.ones(4))
        with pytest.raises(ValueError, match="delta"):  # a Python hyperparameter: still checked
            huber_loss(x, y, delta=-1.0)
    assert validation.get_checks() == "full"
    old = lossbook.set_checks("fast")
    try:
        assert old == "full" and validation.skip_value_checks(x)
    finally:
        lossbook.set_checks(old)
    with pytest.raises(ValueError, match="checks mode must be one of"):
        lossbook.set_checks("off")


def test_register_rejects_unknown_vocabulary_and_duplicates():
    def fake_loss(input, target, *, reduction="mean"):
        """doc"""
        return input

    common = dict(module=None, section="s", output_range=(0.0, 1.0), gradient="exact", reference=None,
                  reference_name="", sample=lambda g, d, dev: None)
    with pytest.raises(ValueError, match="unknown input kind"):
        registry.register(fake_loss, input_kind="pixels", properties=set(), **common)
    with pytest.raises(ValueError, match="unknown properties"):
        registry.register(fake_loss, input_kind="regression", properties={"shiny"}, **common)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_renamed(fake_loss, "huber_loss"), input_kind="regression",
                          properties=set(), **common)
    with pytest.raises(KeyError, match="no loss named 'nope'"):
        registry.get("nope")


def _renamed(fn, name):
    fn.__name__ = name
    return fn


def test_module_twin_signature_and_errors():
    import inspect

    params = inspect.signature(HuberLoss.__init__).parameters
    assert list(params)[1:] == ["delta", "weight", "reduction"]
    assert params["delta"].default == 1.0
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['beta'\\]"):
        HuberLoss(beta=1.0)
    x, y = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(HuberLoss(delta=0.5, reduction="sum")(x, y), huber_loss(x, y, delta=0.5, reduction="sum"))


@pytest.mark.parametrize("name", data.BUNDLED)
def test_load_split_offline(name):
    split = data.load_split(name, seed=0)
    assert split.X_train.dtype == torch.float32
    assert split.X_train.shape[0] > split.X_test.shape[0] > 0
    torch.testing.assert_close(split.X_train.mean(0), torch.zeros(split.num_features), atol=1e-5, rtol=0)
    if name == "diabetes":
        assert split.y_train.dtype == torch.float32
    else:
        assert split.y_train.dtype == torch.long
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load_split("mnist")


def test_generators_are_seeded():
    a = data.heteroscedastic_1d(50, generator=3)
    b = data.heteroscedastic_1d(50, generator=3)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    x, r = data.directional_returns(100, generator=1)
    assert x.shape == (100, 5) and r.shape == (100,)
    s = data.ar_seasonal_series(100, generator=0)
    X, Y = data.windows(s, lags=10, horizon=2)
    assert X.shape == (89, 10) and Y.shape == (89, 2)
    torch.testing.assert_close(X[1, -1], Y[0, 0])
    y, mask = data.add_target_outliers(torch.zeros(20), 0.25, 8.0, generator=0)
    assert int(mask.sum()) == 5 and float(y.sum()) == 40.0


def test_fit_decreases_the_loss_deterministically():
    def run():
        torch.manual_seed(0)
        model = mlp(3, 8, 1)
        X = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
        y = X.sum(1)
        hist = fit(model, lambda o, t: huber_loss(o[:, 0], t), X, y, steps=50, lr=1e-2, batch_size=8,
                   generator=torch.Generator().manual_seed(2))
        return hist, predict(model, X)

    h1, p1 = run()
    h2, p2 = run()
    assert h1 == h2 and torch.equal(p1, p2)
    assert h1[-1] < h1[0]
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        fit(mlp(1, 2, 1), huber_loss, torch.zeros(2, 1), torch.zeros(2, 1), optimizer="lbfgs")


def test_book_helpers(monkeypatch):
    gen = book.setup(seed=5)
    assert torch.get_num_threads() == 1
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    src = book.show_source(huber_loss)
    assert "def huber_loss" in src.data and "lossbook/regression.py" in src.data
    assert book.mean_std([1.0, 2.0, 3.0], digits=2) == "2.00 ± 1.00"
    assert book.mean_std([0.5], seeds=[0]) == "0.500 (seed 0)" and book.mean_std([0.5]) == "0.500 (one seed)"
    assert book.mean_std([1.0, 1.0, 1.0]) == "1.000 (all 3 seeds)"
    assert book.mean_std([1.0, 1.0001, 1.0]) == "1.000 ± <0.0005"
    monkeypatch.setenv(book.STATIC_ENV, "1")
    import matplotlib

    matplotlib.use("Agg")
    assert book.explorer({"huber": lambda r, d: huber_loss(r, torch.zeros_like(r), delta=d, reduction="none")},
                         param="delta", values=(0.1, 2.0, 0.1), init=1.0) is None
    monkeypatch.delenv(book.STATIC_ENV)
    widget = book.explorer({"huber": lambda r, d: huber_loss(r, torch.zeros_like(r), delta=d, reduction="none")},
                           param="delta", values=(0.1, 2.0, 0.1), init=1.0)
    assert widget is not None


def test_setup_says_when_the_numerics_are_not_pinned(monkeypatch, capsys):
    monkeypatch.setattr(book.numerics, "problems", lambda: ["not set: MKL_CBWR=COMPATIBLE"])
    book.setup(seed=0)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "MKL_CBWR=COMPATIBLE" in out and "tools/dev.py env" in out
    monkeypatch.setattr(book.numerics, "problems", lambda: [])
    book.setup(seed=0)
    assert capsys.readouterr().out == ""


def test_check_calibration_is_strict_only_under_the_pins(monkeypatch, capsys):
    committed = {("E1", "acc"): {0: 0.5, 1: 0.6}}
    same, moved = [("E1", 0, "acc", 0.50001)], [("E1", 0, "acc", 0.52), ("E1", 0, "missing", 1.0)]
    monkeypatch.setattr(book.numerics, "pinned", lambda: True)
    book.check_calibration(same, committed)
    assert "reproduces its 1 values" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not reproduced within 0.0001"):
        book.check_calibration(moved, committed)
    with pytest.raises(AssertionError):
        book.check_calibration([("E1", 0, "acc", float("nan"))], committed)
    monkeypatch.setattr(book.numerics, "pinned", lambda: False)
    book.check_calibration(moved, committed)  # reports, does not raise
    out = capsys.readouterr().out
    assert "2 of 2 values differ" in out and "this run 0.5200, file 0.5" in out and "missing" in out


def test_assert_below_prints_the_bound_not_the_digits(capsys):
    book.assert_below("max |autograd - derived|", 1.1e-16, 1e-12)
    assert capsys.readouterr().out == "max |autograd - derived| < 1e-12\n"
    with pytest.raises(AssertionError, match="not below 1e-12"):
        book.assert_below("err", 1e-9, 1e-12)
    with pytest.raises(AssertionError):
        book.assert_below("err", float("nan"), 1e-12)


def test_renamed_names_keep_working_with_a_deprecation_warning():
    import lossbook.check as C

    def old_style_loss(input, target, *, reduction="mean"):
        """doc"""
        return input

    common = dict(module=None, section="s", output_range=(0.0, 1.0), gradient="exact", reference=None,
                  reference_name="", sample=lambda g, d, dev: None)
    with pytest.warns(DeprecationWarning, match="input_kind"):
        spec = registry.register(old_style_loss, inputs="regression", properties={"symmetric", "robust"}, **common)
    try:
        assert spec.input_kind == "regression"
        assert spec.properties == {"even", "bounded-influence"}
        with pytest.warns(DeprecationWarning, match="renamed input_kind"):
            assert spec.inputs == "regression"
    finally:
        registry._REGISTRY.pop("old_style_loss")
    with pytest.warns(DeprecationWarning, match="probe_even_regression"):
        assert C.probe_symmetric_regression is C.probe_even_regression


def test_register_derives_the_chapter_from_the_module():
    from lossbook.registry import get
    assert get("huber_loss").chapter == "regression"
    with pytest.raises(ValueError, match="is not its module's family"):
        def stray_loss(input, target, *, reduction="mean"):
            """doc"""
            return input
        registry.register(stray_loss, chapter="proper", module=None, section="s", input_kind="regression",
                          output_range=(0.0, 1.0), properties=set(), gradient="exact", reference=None,
                          reference_name="")


def test_assert_quoted_is_strict_only_under_the_pins(monkeypatch, capsys):
    book.assert_quoted("same", 0.5, 0.5)
    monkeypatch.setattr(book.numerics, "pinned", lambda: True)
    with pytest.raises(AssertionError, match="this run gives 0.4, the text quotes 0.5"):
        book.assert_quoted("E9.9", 0.4, 0.5)
    monkeypatch.setattr(book.numerics, "pinned", lambda: False)
    book.assert_quoted("E9.9", 0.4, 0.5)
    assert "E9.9: this run gives 0.4, the text quotes 0.5 (numerics not pinned)" in capsys.readouterr().out


def test_calibration_table_writes_only_when_full_and_reads_back(monkeypatch, tmp_path):
    from lossbook import book

    monkeypatch.setattr(book, "table_path", lambda name: tmp_path / name)
    records = [("E1", 0, "acc", 0.123456789), ("E1", 1, "acc", 0.5), ("E2", 0, "loss", 1 / 3)]
    assert book.calibration_table("t.csv", records, full=True) == {
        ("E1", "acc"): {0: 0.123457, 1: 0.5}, ("E2", "loss"): {0: 0.333333}}
    exact = book.calibration_table("t.csv", records, full=True, digits=None)
    assert exact[("E2", "loss")][0] == 1 / 3  # every digit
    assert book.calibration_table("t.csv", [("E9", 0, "x", 9.0)], full=False) == exact  # read only
