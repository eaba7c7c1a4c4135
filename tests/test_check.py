"""lossbook.check: the reader's checker passes correct losses and names what is wrong with broken ones.

The property probes it shares with tests/test_generic.py are shown here to fail
on losses that lack the property, so a claimed property is never checked by a
probe that cannot fail.
"""

from __future__ import annotations

import functools
import inspect
import pathlib

import nbformat
import pytest
import torch
import torch.nn.functional as F

from lossbook import classification as C
from lossbook import surrogates as S
from lossbook.families import written
from lossbook.check import PROPERTY_PROBES, CheckReport, check_loss, draw, probe_for
from lossbook.registry import all_losses, get
from lossbook.utils import reduce_loss

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = [f.module for f in written()]


def failed(report: CheckReport) -> list[str]:
    return [f.check for f in report.failures]


def huber(input, target, *, delta=1.0, reduction="mean"):
    r = (input - target).abs()
    return reduce_loss(torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)), reduction)


def naive_logistic(margins, *, reduction="mean"):
    return reduce_loss(torch.log(1 + torch.exp(-margins)), reduction)


LOGISTIC = {"reference_kwargs": {"kind": "logistic"}}


# --------------------------------------------------------------------------- correct losses pass


@pytest.mark.parametrize("spec", [s for s in all_losses() if s.kind.tensors], ids=lambda s: s.name)
def test_every_registered_loss_passes_its_own_check(spec):
    report = check_loss(spec.fn, spec.name)
    assert report.passed, str(report)


def test_a_loss_that_takes_a_model_is_refused_with_a_pointer_to_its_reference():
    with pytest.raises(ValueError, match="takes a model"):
        check_loss(lambda model, x, y, **kw: model(x).sum(), "trades_loss")


def test_a_correct_reader_implementation_passes_every_check():
    report = check_loss(huber, "huber_loss")
    assert report.passed, str(report)
    assert [f.check for f in report.findings] == [
        "signature", "value", "gradient", "dtype", "inputs untouched", "extreme inputs",
        "property bounded-influence", "property convex", "property even", "property nonnegative"]
    assert str(report).endswith("all 10 checks passed")


def test_reference_kwargs_fix_a_case_of_the_reference():
    stable = lambda z, *, reduction="mean": reduce_loss(F.softplus(-z), reduction)  # noqa: E731
    assert check_loss(stable, "margin_loss", **LOGISTIC).passed
    hinge = lambda z, *, reduction="mean": reduce_loss(torch.relu(1 - z), reduction)  # noqa: E731
    assert check_loss(hinge, "margin_loss", reference_kwargs={"kind": "hinge"}).passed
    assert "value" in failed(check_loss(hinge, "margin_loss", **LOGISTIC))


# --------------------------------------------------------------------------- broken losses are named


def test_overflowing_formula_fails_only_the_extreme_input_check():
    report = check_loss(naive_logistic, "margin_loss", **LOGISTIC)
    assert failed(report) == ["extreme inputs"]
    assert "non-finite loss inf" in report.failures[0].detail and "log space" in report.failures[0].detail


def test_nan_gradient_at_saturation_is_reported():
    def naive_gce(z, y, *, q=0.7, reduction="mean"):
        p = torch.softmax(z, -1).gather(1, y[:, None]).squeeze(1)
        return reduce_loss((1 - p**q) / q, reduction)
    report = check_loss(naive_gce, "gce_loss")
    assert failed(report) == ["extreme inputs"]
    assert "non-finite gradient" in report.failures[0].detail


def test_wrong_formula_reports_the_input_where_it_differs():
    def off_by_half(input, target, *, delta=1.0, reduction="mean"):
        r = (input - target).abs()
        return reduce_loss(torch.where(r <= delta, 0.5 * r**2, delta * (r - delta)), reduction)
    report = check_loss(off_by_half, "huber_loss")
    assert "value" in failed(report) and "property convex" in failed(report)
    detail = next(f.detail for f in report.failures if f.check == "value")
    assert detail.startswith("reduction='none': got") and "argument 0 =" in detail and "argument 1 =" in detail


def test_wrong_reduction_is_named():
    def mean_for_sum(input, target, *, delta=1.0, reduction="mean"):
        loss = huber(input, target, delta=delta, reduction="none")
        return loss if reduction == "none" else loss.mean()
    report = check_loss(mean_for_sum, "huber_loss")
    assert failed(report) == ["value", "gradient"]
    assert report.failures[0].detail.startswith("reduction='sum'")


def test_missing_reduction_keyword_stops_at_the_signature():
    report = check_loss(lambda x, y, *, delta=1.0: huber(x, y, delta=delta), "huber_loss")
    assert [f.check for f in report.findings] == ["signature"]
    assert "reduction=" in report.failures[0].detail and "unexpected keyword" in report.failures[0].detail


def test_an_error_in_the_body_is_a_value_failure_not_a_signature_failure():
    def transposed(input, target, *, reduction="mean"):
        return reduce_loss((input - target.T) ** 2, reduction)
    report = check_loss(transposed, "mse_loss")
    assert report.findings[0].passed and "value" in failed(report)
    assert "RuntimeError" in next(f.detail for f in report.failures if f.check == "value")


def test_detached_or_numpy_computation_has_no_gradient():
    def via_numpy(input, target, *, reduction="mean"):
        loss = torch.from_numpy((input.detach().numpy() - target.numpy()) ** 2)
        return reduce_loss(loss, reduction)
    report = check_loss(via_numpy, "mse_loss")
    assert "gradient" in failed(report)
    assert "detached" in next(f.detail for f in report.failures if f.check == "gradient")


def test_wrong_gradient_with_the_right_value_is_caught():
    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, r):
            ctx.save_for_backward(r)
            return r**2

        @staticmethod
        def backward(ctx, grad):
            (r,) = ctx.saved_tensors
            return grad * r  # should be 2r

    def mse(input, target, *, reduction="mean"):
        return reduce_loss(WrongBackward.apply(input - target), reduction)
    report = check_loss(mse, "mse_loss")
    assert failed(report) == ["gradient"]
    assert "d loss / d argument 0" in report.failures[0].detail


def test_a_mean_cut_off_from_autograd_is_a_gradient_failure():
    def item_mean(input, target, *, reduction="mean"):
        loss = (input - target) ** 2
        return torch.tensor(loss.mean().item()) if reduction == "mean" else reduce_loss(loss, reduction)
    report = check_loss(item_mean, "mse_loss")
    assert failed(report) == ["gradient"]
    assert "reduction='mean'" in report.failures[0].detail and "detached" in report.failures[0].detail


def test_a_hard_coded_hyperparameter_is_caught():
    def ww_margin_one(input, target, *, margin=1.0, reduction="mean"):
        zy = input.gather(1, target[:, None])
        return reduce_loss(torch.relu(1.0 + input - zy).sum(1) - 1.0, reduction)  # ignores margin
    assert "value" in failed(check_loss(ww_margin_one, "weston_watkins_loss"))


# Registered samples use non-default hyperparameters, so that a candidate which ignores one
# (and so always uses the default) fails the value check.
SAMPLE_AT_DEFAULT = {("gce_loss", "q"): "the card states the range [0, 1/q] at the default q"}


def test_registered_samples_do_not_use_default_hyperparameters():
    at_default = []
    for spec in all_losses():
        params = inspect.signature(spec.fn).parameters
        for key, value in draw(spec).kwargs.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or key not in params:
                continue
            if params[key].default == value and (spec.name, key) not in SAMPLE_AT_DEFAULT:
                at_default.append(f"{spec.name}: {key}={value}")
    assert not at_default, f"samples at the default value: {at_default}"


def test_upcasting_to_float64_is_a_dtype_failure():
    report = check_loss(lambda x, y, *, reduction="mean": reduce_loss((x.double() - y.double()) ** 2, reduction),
                        "mse_loss")
    assert failed(report) == ["dtype"]


def test_in_place_edit_of_an_input_is_caught():
    def in_place(input, target, *, reduction="mean"):
        return reduce_loss(input.sub_(target).pow(2), reduction)
    assert "inputs untouched" in failed(check_loss(in_place, "mse_loss"))


def test_an_exception_inside_the_candidate_is_a_finding_not_a_crash():
    def broken(input, target, *, reduction="mean"):
        if input.dtype == torch.float32:
            raise ValueError("float32 not supported")
        return reduce_loss((input - target) ** 2, reduction)
    report = check_loss(broken, "mse_loss")
    assert failed(report) == ["dtype", "extreme inputs"]
    assert report.failures[0].detail == "raised ValueError: float32 not supported"
    with pytest.raises(AssertionError, match="2 of 9 checks failed"):
        report.raise_if_failed()


def test_correct_candidates_with_other_defaults_or_names_pass_with_a_stable_report():
    def my_focal(z, y, *, gamma=2.0, alpha=0.25, reduction="mean"):  # torchvision-style default alpha
        return C.focal_loss(z, y, gamma=gamma, alpha=alpha, reduction=reduction)
    assert check_loss(my_focal, "focal_loss").passed

    partial = functools.partial(huber)
    report = check_loss(partial, "huber_loss")
    assert report.passed and str(report).startswith("check_loss: huber against")

    class Huber:
        def __call__(self, input, target, *, delta=1.0, reduction="mean"):
            return huber(input, target, delta=delta, reduction=reduction)
    assert str(check_loss(Huber(), "huber_loss")).startswith("check_loss: Huber against")


def test_series_candidates_reducing_over_the_time_axis_pass():
    def rmse(input, target, *, reduction="mean"):
        return reduce_loss(((input - target) ** 2).mean(dim=1).sqrt(), reduction)
    report = check_loss(rmse, "rmse")
    # Reducing over the time axis is right: only the extreme residuals (1e20 in float32) overflow r**2.
    assert failed(report) == ["extreme inputs"], str(report)
    assert "overflow" in next(f.detail for f in report.findings if f.check == "extreme inputs")


def test_properties_the_reference_lacks_in_a_fixed_case_are_not_checked():
    def savage(z, *, reduction="mean"):
        return S.margin_loss(z, kind="savage", reduction=reduction)
    report = check_loss(savage, "margin_loss", reference_kwargs={"kind": "savage"})
    assert report.passed
    assert next(f.detail for f in report.findings if f.check == "property convex").startswith("not checked")


def test_non_tensor_results_are_reported():
    def as_numpy(input, target, *, reduction="mean"):
        return (input - target).detach().numpy() ** 2
    report = check_loss(as_numpy, "mse_loss")
    assert "not a torch.Tensor" in next(f.detail for f in report.failures if f.check == "value")
    assert "not a torch.Tensor" in next(f.detail for f in report.failures if f.check == "dtype")


def test_bad_arguments_to_the_checker_are_errors():
    with pytest.raises(TypeError, match="list of names"):
        check_loss(huber, "huber_loss", properties="convex")
    with pytest.raises(ValueError, match="seeds"):
        check_loss(huber, "huber_loss", seeds=0)


# --------------------------------------------------------------------------- property probes can fail

NOT_THE_PROPERTY = [
    # (property, a registered loss that lacks it)
    ("convex", "lmse_loss"),            # per-sample log(1 + r^2) is not convex
    ("convex", "gce_loss"),
    ("label-symmetric", "cross_entropy"),  # the sum over labels is not constant
    ("even", "mbe"),                    # signed error
    ("argument-symmetric", "mape"),     # the error is relative to the target, not to the prediction
    ("bounded-influence", "mse_loss"),  # influence grows with the residual
    ("bounded", "cross_entropy"),
    ("scale-free", "mse_loss"),
    ("nonnegative", "mbe"),
    ("proper", "focal_score"),          # the focal score pulls its minimiser towards uniform
]


@pytest.mark.parametrize("prop,name", NOT_THE_PROPERTY, ids=[f"{p}-{n}" for p, n in NOT_THE_PROPERTY])
def test_probe_rejects_a_loss_without_the_property(prop, name):
    spec = get(name)
    report = check_loss(spec.fn, name, properties=[prop])
    assert failed(report) == [f"property {prop}"], str(report)
    assert "not " in report.failures[0].detail or "below zero" in report.failures[0].detail \
        or "outside" in report.failures[0].detail or "bound" in report.failures[0].detail


def test_calibration_probes_reject_a_wrong_way_surrogate():
    # exp(z) rewards negative margins: calibrated for the wrong sign, so no eta != 1/2 is handled correctly
    wrong = lambda z, *, reduction="mean": reduce_loss(torch.exp(z), reduction)  # noqa: E731
    report = check_loss(wrong, "margin_loss", reference_kwargs={"kind": "exponential"})
    assert "property classification-calibrated" in failed(report)
    # a loss that ignores the label cannot be calibrated over classes
    flat = lambda z, y, *, label_smoothing=0.0, reduction="mean": reduce_loss(z.logsumexp(-1), reduction)  # noqa: E731
    assert "property classification-calibrated" in failed(check_loss(flat, "cross_entropy"))


def test_every_probe_is_shown_to_fail_somewhere():
    shown = {probe_for(p, get(n).input_kind) for p, n in NOT_THE_PROPERTY}
    shown |= {probe_for("classification-calibrated", "margins"), probe_for("classification-calibrated", "logits")}
    missing = {f.__name__ for f in PROPERTY_PROBES.values()} - {f.__name__ for f in shown}
    assert not missing, f"no test shows these probes failing: {sorted(missing)}"


def test_unknown_property_or_reference_kwarg_is_an_error():
    report = check_loss(huber, "huber_loss", properties=["proper"])
    assert failed(report) == ["property proper"] and "no probe" in report.failures[0].detail
    assert probe_for("proper", "regression") is None
    with pytest.raises(TypeError, match="no hyperparameters"):
        check_loss(huber, "huber_loss", reference_kwargs={"colour": 1})


# --------------------------------------------------------------------------- the book's exercises


def _cells(chapter):
    return nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4).cells


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_has_a_self_checking_exercise_whose_solution_is_executed(chapter):
    cells = _cells(chapter)
    text = [c.source for c in cells]
    starts = [i for i, t in enumerate(text) if "{solution-start}" in t]
    assert starts, f"{chapter}: no gated solution (solution-start/solution-end with code cells)"
    checked = False
    for i in starts:
        end = next(j for j in range(i + 1, len(cells)) if "{solution-end}" in text[j])
        code = [c for c in cells[i + 1:end + 1] if c["cell_type"] == "code"]
        assert code, f"{chapter}: a gated solution at cell {i} has no code cell"
        for c in code:
            out = "".join(o.get("text", "") for o in c.get("outputs", []))
            assert c.get("execution_count") and not any(o["output_type"] == "error" for o in c["outputs"])
            if "check_loss(" in c.source:
                assert "assert report.passed" in c.source and "checks passed" in out
                checked = True
    assert checked, f"{chapter}: no exercise solution is verified by lossbook.check.check_loss"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_with_code_are_code_cells_not_markdown(chapter):
    # Code inside a markdown {solution} is never run; gated solutions put it in executed cells.
    for cell in _cells(chapter):
        src = cell.source
        if cell["cell_type"] == "markdown" and "{solution}" in src:
            assert "```python" not in src, f"{chapter}: a solution keeps its code in markdown, where it never runs"
