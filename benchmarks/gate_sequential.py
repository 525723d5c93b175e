"""The sequential gate (--hb-gate-sequential) against the fixed gate, by simulation.

The bake-offs of benchmarks/gate_false_pass.py (each task's baseline pass
probability from a difficulty profile, the candidate DELTA lower on every
task, margin ``score:3pt``, alpha 0.05), drawn with numpy so that thousands of
gates are judged at once, for suites of 20, 40 and 89 tasks. Each simulated
bake-off is judged twice on the same trials: by the fixed gate (every task) and
by the sequential gate, which looks after each task in run order from its first
look on (sequential.first_look: 10 tasks, or a tenth of the suite), may fail at
any look and pass only at the last, and stops at the first look that decides.
For each suite size the table gives, in percent of simulated gates, fixed /
sequential:

- equal (delta 0): pass (correct) and fail (a false fail);
- 2.5 pts worse (just inside the 3-point margin): fail, a false fail;
- 3 pts worse (at the margin, the worst case of both): fail and pass, each
  meant to happen at most alpha/2 = 2.5% of the time;
- 3.5 and 5 pts worse (past the margin): pass, a false pass;
- 15 pts worse: fail (the regression caught);

and the share of trials the sequential gate did not run, on the 15-pts-worse
candidate, the equal one and the one 3.5 pts worse (just past the margin).
Under each table, for every row and error column: the excess of the sequential
error rate over the fixed gate's, with its standard error (paired: both gates
judge the same trials), then the largest excess in standard errors, at the
margin and off it. The rule the sequential gate must meet: no excess reaches
two standard errors.
With 10 tasks or fewer the sequential gate has one look, at the end, with the
fixed gate's interval: the same verdicts by construction, so those rows are not
simulated again (tests/test_sequential.py checks it).

Each look uses the gate's own interval (stats.difference_interval_bounds, the
array form of stats.paired_difference_interval, at the look's levels from
sequential.pass_alpha and sequential.fail_alpha) and gate.classify's rule;
tests/test_sequential.py checks that this gives the verdict and the stopping
look of sequential.Sequential on whole records. ``--share`` and ``--rho`` judge
the grid with another fail-side spending (share·α/2·(n/N)^rho) in place of the
gate's, as the search for the gate's constants did (sequential.FAIL_SHARE).

``--designs`` compares other ways to stop on the 89 × 3 bake-offs, the same
columns: the earlier symmetric rule, passing from half the suite, other
alpha-spending functions and first looks, the interval without the
small-sample t adjustment, three confidence sequences (normal mixture,
betting, empirical Bernstein), and the most any stopping rule on the running
mean could save on the 15-point regression at a one-sided error of 2.5%
(:class:`OptimalStopping`, the normal model with the task SD known).

    python benchmarks/gate_sequential.py [--gates 10000] [--seed 1] [--share 0.8] [--rho 1.75] [--designs]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm, t as t_dist

from benchmarks.gate_false_pass import DIFFICULTY, JUST_WORSE, MARGIN, MUCH_WORSE, SAMPLES, WORSE
from pytest_harnessbench import sequential
from pytest_harnessbench.stats import difference_interval_bounds

TASKS = (20, 40, 89)
JUST_INSIDE, AT_MARGIN = 0.025, MARGIN.threshold
DELTAS = (0.0, JUST_INSIDE, AT_MARGIN, JUST_WORSE, WORSE, MUCH_WORSE)
ALPHA = 0.05
PASS, INCONCLUSIVE, FAIL = 1, 0, -1

#: A look: (tasks in it, the quantile in place of t of the interval that may pass, of the one that may fail; inf: the
#: look cannot decide that way).
Look = tuple[int, float, float]


def simulated_differences(rng: np.random.Generator, gates: int, tasks: int, samples: int, delta: float,
                          difficulty: str) -> np.ndarray:
    """Per-task candidate − baseline score differences of ``gates`` bake-offs (one a row), in run order:
    gate_false_pass.simulate's model (task pass probability uniform in the profile, the candidate ``delta`` lower,
    ``samples`` trials per task and model)."""
    low, high = DIFFICULTY[difficulty]
    p = rng.uniform(low, high, (gates, tasks))
    baseline = rng.binomial(samples, p)
    candidate = rng.binomial(samples, np.clip(p - delta, 0.0, 1.0))
    return (candidate - baseline) / samples


def t_quantile(n: int, level: float | None) -> float:
    """The t quantile of a two-sided ``level`` interval over ``n`` tasks, as stats.paired_difference_interval
    takes it; inf for no interval."""
    return math.inf if level is None else float(t_dist.ppf(0.5 + (1 - level) / 2, n - 1))


def fixed_looks(total: int, alpha: float = ALPHA) -> list[Look]:
    return [(total, t_quantile(total, alpha), t_quantile(total, alpha))]


def gate_looks(total: int, alpha: float = ALPHA, rho: float = sequential.RHO,
               share: float = sequential.FAIL_SHARE) -> list[Look]:
    """The sequential gate's looks: every task from sequential.first_look, each at sequential.pass_alpha and
    sequential.fail_alpha."""
    return [(n, t_quantile(n, sequential.pass_alpha(n, total, alpha)),
             t_quantile(n, sequential.fail_alpha(n, total, alpha, rho, share)))
            for n in range(sequential.first_look(total), total + 1)]


def spending_looks(total: int, first: int, spend: Callable[[np.ndarray], np.ndarray], alpha: float = ALPHA,
                   t_adjusted: bool = True, passes: str | int = "any", share: float = 1.0) -> list[Look]:
    """Looks at every task from ``first`` that may fail at the boundaries of a spending function (by information
    ``fraction``, ``share``·α/2 · spend(fraction)/spend(1) spent), on the t quantile with the boundary's tail or on
    the boundary itself. ``passes``: "any", at the same boundaries; "last", at the last look only with the fixed gate's
    interval at ``alpha``; a task number, with the same spending over the looks from that task on."""
    def quantiles(start: int) -> dict[int, float]:
        looks = np.arange(start, total + 1)
        spent = spend(looks / total) * share * alpha / 2 / spend(1.0)
        z = sequential.spending_boundaries(tuple(looks / total), tuple(spent))
        return {int(n): float(t_dist.isf(norm.sf(b), n - 1)) if t_adjusted else b for n, b in zip(looks, z)}

    fails = quantiles(first)
    pass_at = fails if passes == "any" else {total: t_quantile(total, alpha)} if passes == "last" else quantiles(passes)
    return [(n, pass_at.get(n, math.inf), q) for n, q in fails.items()]


def interval_decisions(diffs: np.ndarray, samples: int, looks: Sequence[Look]) -> tuple[np.ndarray, np.ndarray]:
    """(passes, fails): booleans per gate and look, the gate's interval at each look judged as gate.classify
    judges it (pass if low ≥ −margin, fail if high < −margin)."""
    sums, squares = diffs.cumsum(axis=1), (diffs * diffs).cumsum(axis=1)
    passes = np.zeros((len(diffs), len(looks)), bool)
    fails = np.zeros_like(passes)
    for i, (n, q_pass, q_fail) in enumerate(looks):
        mean = sums[:, n - 1] / n
        sd = np.sqrt(np.maximum(squares[:, n - 1] - n * mean * mean, 0.0) / (n - 1))
        bounds = {q: difference_interval_bounds(mean, sd, n, 1 / samples, q) for q in {q_pass, q_fail}
                  if math.isfinite(q)}
        if q_pass in bounds:
            passes[:, i] = bounds[q_pass][0] >= -MARGIN.threshold
        if q_fail in bounds:
            fails[:, i] = bounds[q_fail][1] < -MARGIN.threshold
    return passes, fails


def first_decision(passes: np.ndarray, fails: np.ndarray, sizes: Sequence[int], total: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(status, tasks run) per gate: the first look that passes or fails (a pass first, as gate.classify), else
    inconclusive after every task."""
    decided = passes | fails
    first = decided.argmax(axis=1)
    rows = np.arange(len(decided))
    any_decided = decided[rows, first]
    status = np.where(~any_decided, INCONCLUSIVE, np.where(passes[rows, first], PASS, FAIL))
    ran = np.where(any_decided, np.asarray(sizes)[first], total)
    return status, ran


def judge(diffs: np.ndarray, samples: int, looks: Sequence[Look]) -> tuple[np.ndarray, np.ndarray]:
    """(status, tasks run) per gate under these looks of the gate's interval."""
    return first_decision(*interval_decisions(diffs, samples, looks), [n for n, *_ in looks], diffs.shape[1])


# --- confidence sequences, for --designs ----------------------------------------------------------------

def normal_mixture_decisions(diffs: np.ndarray, first: int, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Robbins' one-sided normal-mixture boundary (Howard et al. 2021, eq. 14) per direction at α/2, on the
    running mean with the running SD plugged in (so valid only approximately): |S_n − n·μ| ≥ σ̂·√(2(n + r)
    log(√((n + r)/r) / (α/2))), with r tuned for the tightest boundary at half the suite."""
    total = diffs.shape[1]
    n = np.arange(1, total + 1)
    level = math.log(2 / alpha)
    r = (total / 2) / (2 * level + math.log(1 + 2 * level))
    mean = diffs.cumsum(axis=1) / n
    sd = np.sqrt(np.maximum((diffs * diffs).cumsum(axis=1) - n * mean * mean, 0.0) / np.maximum(n - 1, 1))
    half = sd * np.sqrt(2 * (n + r) * (np.log(np.sqrt((n + r) / r)) + level)) / n
    return ((mean - half >= -MARGIN.threshold)[:, first - 1:], (mean + half < -MARGIN.threshold)[:, first - 1:])


def betting_wealth(gains: np.ndarray, least: float, cap: float = 0.9) -> np.ndarray:
    """log wealth of betting that the mean of ``gains`` (≥ ``least`` < 0) is above 0, per row over columns:
    ∏(1 + λ_i·g_i), λ_i ≥ 0 chosen before g_i by aGRAPA (Waudby-Smith & Ramdas 2023): the running mean over
    the running second moment of the earlier gains (a zero and a variance of 1/4 as prior), at most
    ``cap``/|least|, so a factor stays positive. Under a mean ≤ 0 the wealth is a nonnegative supermartingale:
    by Ville's inequality it reaches 1/a with chance ≤ a, however often it is looked at."""
    n = np.arange(1, gains.shape[1] + 1)
    before = np.concatenate([np.zeros((len(gains), 1)), gains.cumsum(axis=1)[:, :-1]], axis=1)
    before_sq = np.concatenate([np.zeros((len(gains), 1)), (gains * gains).cumsum(axis=1)[:, :-1]], axis=1)
    mean = before / n
    second = (0.25 + before_sq) / n
    bet = np.clip(mean / np.maximum(second, 1e-12), 0.0, cap / -least)
    return np.log1p(bet * gains).cumsum(axis=1)


def betting_decisions(diffs: np.ndarray, first: int, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Two betting tests at α/2 (differences in [−1, 1]): pass once betting on "difference > −margin" has
    multiplied its stake by 2/α, fail once betting on "difference < −margin" has."""
    m, threshold = MARGIN.threshold, math.log(2 / alpha)
    passes = betting_wealth(diffs + m, -1 + m) >= threshold
    fails = betting_wealth(-m - diffs, -1 - m) >= threshold
    return passes[:, first - 1:], fails[:, first - 1:]


def empirical_bernstein_lower(x: np.ndarray, alpha_one_sided: float, cap: float = 0.5) -> np.ndarray:
    """The predictable-plug-in empirical-Bernstein lower confidence sequence for the mean of x in [0, 1]
    (Waudby-Smith & Ramdas 2023, Theorem 2, one-sided): (Σλ_i x_i − log(1/a) − Σ v_i ψ(λ_i)) / Σλ_i, with
    v_i = 4(x_i − μ̂_{i−1})², ψ(λ) = (−log(1 − λ) − λ)/4,
    λ_i = min(√(2 log(1/a) / (σ̂²_{i−1} i log(1 + i))), cap)."""
    n = np.arange(1, x.shape[1] + 1)
    shift = lambda v: np.concatenate([np.zeros((len(v), 1)), v[:, :-1]], axis=1)  # noqa: E731
    mean_before = (0.5 + shift(x.cumsum(axis=1))) / n
    var_before = (0.25 + shift(((x - mean_before) ** 2).cumsum(axis=1))) / n
    bet = np.minimum(np.sqrt(2 * math.log(1 / alpha_one_sided) / (var_before * n * np.log1p(n))), cap)
    penalty = (4 * (x - mean_before) ** 2 * (-np.log1p(-bet) - bet) / 4).cumsum(axis=1)
    return ((bet * x).cumsum(axis=1) - math.log(1 / alpha_one_sided) - penalty) / bet.cumsum(axis=1)


def empirical_bernstein_decisions(diffs: np.ndarray, first: int, alpha: float = ALPHA
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """The empirical-Bernstein sequence on (difference + 1)/2 (in [0, 1]) and its mirror, α/2 each."""
    low = 2 * empirical_bernstein_lower((diffs + 1) / 2, alpha / 2) - 1
    high = 1 - 2 * empirical_bernstein_lower((1 - diffs) / 2, alpha / 2)
    return (low >= -MARGIN.threshold)[:, first - 1:], (high < -MARGIN.threshold)[:, first - 1:]


# --- the most any stopping rule can save ---------------------------------------------------------------

def task_sd(difficulty: str, samples: int, delta: float) -> float:
    """SD of a task's score difference in the simulation: binomial noise of both sides, averaged over the
    profile (the candidate's effect is the same on every task, so nothing else varies)."""
    low, high = DIFFICULTY[difficulty]
    p = low + (high - low) * (np.arange(100_000) + 0.5) / 100_000  # the midpoint rule
    q = np.clip(p - delta, 0.0, 1.0)
    return math.sqrt(float(np.mean(p * (1 - p) + q * (1 - q))) / samples)


class OptimalStopping:
    """The rules that stop to reject (fail) on the running sum of a normal effect known in advance, and the one
    of them that saves the most tasks at a one-sided error, where the effect is zero, of ``alpha_one_sided``.

    Increments are N(``drift``/√total, 1) (so ``drift`` is the final z's mean), N(0, 1) at the margin; looks after
    every task from ``first``. For weights (λ, μ), backward induction over a grid of the running sum finds the rule
    minimising E[tasks]/total + λ·P₀(reject) − μ·P(reject): Bayes-optimal, so no rule with the same error and
    power runs fewer tasks on average. :meth:`solve` sets λ by bisection so that P₀(reject) = ``alpha_one_sided``;
    :meth:`best` searches μ (a larger μ buys power with tasks).
    """

    MUS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)

    def __init__(self, drift: float, total: int, first: int, alpha_one_sided: float, step: float = 0.05):
        self.total, self.first, self.alpha, self.step = total, first, alpha_one_sided, step
        self.increment = drift / math.sqrt(total)
        spread = 7 * math.sqrt(total)
        self.grid = step * np.arange(math.floor(-spread / step),
                                     math.ceil((self.increment * total + spread) / step) + 1)
        self.origin = int(np.argmin(np.abs(self.grid)))  # the sum starts at 0, a grid point
        self.null_step, self.effect_step = self._cell_chances(0.0), self._cell_chances(self.increment)
        self.effect_back = self._cell_chances(-self.increment)

    def _cell_chances(self, shift: float) -> np.ndarray:
        """P(an increment N(shift, 1) lands in the grid cell at each offset), offsets of odd count centred on 0
        (so that np.convolve's "same" aligns them)."""
        offsets = np.arange(-8.0, 8.0 + self.step / 2, self.step)
        return ndtr(offsets + self.step / 2 - shift) - ndtr(offsets - self.step / 2 - shift)

    def rule(self, lam: float, mu: float) -> list[np.ndarray]:
        """Where to reject, per look (index n − 1; never before ``first``)."""
        a, grid, total = self.increment, self.grid, self.total
        cost = lambda n: lam * np.exp(-a * grid + a * a * n / 2) - mu  # noqa: E731 (per unit of the effect's density)
        rejects = [cost(total) < 0]
        value = np.minimum(cost(total), 0.0)
        for n in range(total - 1, 0, -1):
            # the value expected one task on, under the effect: a correlation, so the mirrored kernel
            go_on = 1 / total + np.convolve(value, self.effect_back, mode="same")
            stop = cost(n) < go_on if n >= self.first else np.zeros_like(grid, bool)
            value = np.where(stop, cost(n), go_on)
            rejects.append(stop)
        return rejects[::-1]

    def outcome(self, rejects: list[np.ndarray], kernel: np.ndarray) -> tuple[float, float]:
        """(P(reject), expected share of tasks saved) with increments whose cell chances are ``kernel``."""
        density = np.zeros_like(self.grid)
        density[self.origin] = 1.0
        rejected = saved = 0.0
        for n in range(1, self.total + 1):
            density = np.convolve(density, kernel, mode="same")
            now = density[rejects[n - 1]].sum()
            rejected, saved = rejected + now, saved + now * (self.total - n) / self.total
            density = np.where(rejects[n - 1], 0.0, density)
        return rejected, saved

    def solve(self, mu: float) -> tuple[float, float, np.ndarray]:
        """(share saved under the effect, P(reject) under it, z boundary per look: reject at look n if the running
        mean's z is at least z[n − 1]; inf where it never rejects) of the rule with error ``alpha_one_sided``
        for this μ."""
        low, high = -2.0, 12.0  # log λ
        for _ in range(24):
            middle = (low + high) / 2
            too_often = self.outcome(self.rule(math.exp(middle), mu), self.null_step)[0] > self.alpha
            low, high = (middle, high) if too_often else (low, middle)
        rejects = self.rule(math.exp(high), mu)
        z = np.array([self.grid[r].min() / math.sqrt(n) if r.any() else np.inf for n, r in enumerate(rejects, 1)])
        caught, saved = self.outcome(rejects, self.effect_step)
        return saved, caught, z

    def best(self) -> tuple[float, float, np.ndarray]:
        return max((self.solve(mu) for mu in self.MUS), key=lambda found: found[0])


# --- tables -------------------------------------------------------------------------------------------------

#: A way to decide: (differences, samples) -> (status, tasks run) per gate.
Design = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]

#: (delta, status, column) of the columns with an error rate: the sequential gate must not raise them
ERRORS = ((0.0, FAIL, "equal: fail"), (JUST_INSIDE, FAIL, "2.5 pts worse: fail"),
          (AT_MARGIN, FAIL, "3 pts worse: fail"), (AT_MARGIN, PASS, "3 pts worse: pass"),
          (JUST_WORSE, PASS, "3.5 pts worse: pass"), (WORSE, PASS, "5 pts worse: pass"))
RATES = ((0.0, PASS, "equal: pass"), *ERRORS, (MUCH_WORSE, FAIL, "15 pts worse: fail"))
SAVINGS = ((MUCH_WORSE, "saved: 15 worse"), (0.0, "saved: equal"), (JUST_WORSE, "saved: 3.5 worse"))


def header(first: str, columns: Sequence[str]) -> list[str]:
    return [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]


def runs(seed: int, gates: int, tasks: int, samples: int, difficulty: str, designs: Sequence[Design]
         ) -> dict[float, list[tuple[np.ndarray, np.ndarray]]]:
    """delta -> (status, tasks run) per design, every design on the same simulated trials."""
    out = {}
    for i, delta in enumerate(DELTAS):
        rng = np.random.default_rng([seed, tasks, samples, i])
        diffs = simulated_differences(rng, gates, tasks, samples, delta, difficulty)
        out[delta] = [design(diffs, samples) for design in designs]
    return out


def row(judged: dict[float, list[tuple[np.ndarray, np.ndarray]]], tasks: int, which: Sequence[int]) -> list[str]:
    """The table's cells: each rate as the designs ``which`` give it (a / b), then the last one's savings."""
    rate = lambda delta, status: " / ".join(  # noqa: E731
        f"{100 * np.mean(judged[delta][i][0] == status):.1f}" for i in which)
    saved = lambda delta: f"{100 * np.mean(tasks - judged[delta][which[-1]][1]) / tasks:.1f}%"  # noqa: E731
    return [rate(delta, status) for delta, status, _ in RATES] + [saved(delta) for delta, _ in SAVINGS]


def excesses(judged: dict[float, list[tuple[np.ndarray, np.ndarray]]]) -> list[tuple[float, float]]:
    """Per error column: the (sequential − fixed) rate and its standard error (paired: the same trials)."""
    out = []
    for delta, status, _ in ERRORS:
        fixed, seq = (judged[delta][i][0] == status for i in (0, 1))
        difference = seq.astype(float) - fixed
        out.append((difference.mean(), difference.std() / math.sqrt(len(difference))))
    return out


def in_errors(excess: tuple[float, float]) -> float:
    """An excess in standard errors (0 where both gates agree on every trial)."""
    mean, se = excess
    return mean / se if se > 0 else 0.0


def design_words(share: float, rho: float, first: str = "10 (or a tenth)") -> str:
    return f"fail from look {first} spending {share:g}·α/2·(n/N)^{rho:g}, pass at the last look"


def table(difficulty: str, gates: int, seed: int, rho: float, share: float) -> list[str]:
    low, high = DIFFICULTY[difficulty]
    lines = [f"difficulty {difficulty} (pass probabilities {low}–{high}), margin {MARGIN}, "
             f"{design_words(share, rho)}, {gates} gates per row, % of gates, fixed / sequential:",
             *header("tasks × samples", [c for *_, c in RATES] + [c for _, c in SAVINGS])]
    excess_lines = ["excess of the sequential error rate over the fixed gate's, pts ± one standard error (paired):",
                    *header("tasks × samples", [c for *_, c in ERRORS])]
    worst = {"at": (-math.inf, 0.0, 0.0, ""), "off": (-math.inf, 0.0, 0.0, "")}
    for tasks in TASKS:
        for samples in SAMPLES:
            fixed, seq = fixed_looks(tasks), gate_looks(tasks, rho=rho, share=share)
            judged = runs(seed, gates, tasks, samples, difficulty,
                          [lambda d, s: judge(d, s, fixed), lambda d, s: judge(d, s, seq)])
            lines.append(f"| {tasks} × {samples} | " + " | ".join(row(judged, tasks, (0, 1))) + " |")
            found = excesses(judged)
            excess_lines.append(f"| {tasks} × {samples} | "
                                + " | ".join(f"{100 * m:+.2f} ± {100 * se:.2f}" for m, se in found) + " |")
            for (delta, _, column), excess in zip(ERRORS, found):
                where = "at" if delta == AT_MARGIN else "off"
                worst[where] = max(worst[where], (in_errors(excess), *excess, f"{tasks} × {samples}, {column}"))
    for where, words in (("at", "at the margin"), ("off", "off it (equal, 2.5, 3.5, 5 pts worse)")):
        z, most, se, at = worst[where]
        excess_lines.append(f"largest excess {words}: " + (
            f"{z:+.1f} standard errors ({100 * most:+.2f} pts ± {100 * se:.2f}), at {at}" if most > 0 else
            "none (every sequential rate at or below the fixed gate's)"))
    return lines + excess_lines


def boundary_looks(z: np.ndarray) -> list[Look]:
    """Looks at the tasks where a z boundary (per task, inf: no look) is finite, each with the t quantile of its
    tail, both ways."""
    return [(n, q, q) for n, b in enumerate(z, 1) if np.isfinite(b) for q in [float(t_dist.isf(norm.sf(b), n - 1))]]


def designs(total: int, optimal: np.ndarray) -> dict[str, Design]:
    """The ways to stop that --designs compares, by name (the first two: the fixed gate and this gate);
    ``optimal``: OptimalStopping's z boundaries for the 15-pts-worse candidate."""
    power = lambda rho: lambda t: t ** rho  # noqa: E731
    obrien_fleming = lambda t: 2 * norm.sf(norm.isf(ALPHA / 4) / np.sqrt(t))  # noqa: E731 (Lan-DeMets)
    pocock = lambda t: np.log(1 + (math.e - 1) * t)  # noqa: E731
    first, share, rho = sequential.first_look(total), sequential.FAIL_SHARE, sequential.RHO
    gate = power(rho)
    by_looks = lambda looks: lambda d, s: judge(d, s, looks)  # noqa: E731
    by_decisions = lambda decide: lambda d, s: first_decision(  # noqa: E731
        *decide(d, first), range(first, total + 1), total)
    at_end = lambda spend, start=first, **how: by_looks(  # noqa: E731 (fail from start, pass at the last look)
        spending_looks(total, start, spend, passes="last", **how))
    return {
        "fixed gate (every task)": by_looks(fixed_looks(total)),
        f"this gate: {design_words(share, rho, str(first))}": by_looks(gate_looks(total)),
        "the same, passing from half the suite too (the same spending)": by_looks(
            spending_looks(total, first, gate, share=share, passes=math.ceil(total / 2))),
        "the earlier rule: pass or fail at any look, α/2·(n/N)^1.5": by_looks(spending_looks(total, first, power(1.5))),
        f"fail side at the full α: α/2·(n/N)^{rho:g}": at_end(gate),
        "fail side at the full α: α/2·(n/N)^1": at_end(power(1.0)),
        "fail side at the full α: α/2·(n/N)^2": at_end(power(2.0)),
        "fail side at the full α: Lan-DeMets O'Brien-Fleming": at_end(obrien_fleming),
        "fail side at the full α: Lan-DeMets Pocock": at_end(pocock),
        "this gate's spending, first look 5": at_end(gate, 5, share=share),
        "this gate's spending, first look 20": at_end(gate, 20, share=share),
        "this gate's spending, z not t (NOT valid)": at_end(gate, share=share, t_adjusted=False),
        "normal-mixture CS (plug-in SD; passes at any look)": by_decisions(normal_mixture_decisions),
        "betting CS (aGRAPA; passes at any look)": by_decisions(betting_decisions),
        "empirical-Bernstein CS (passes at any look)": by_decisions(empirical_bernstein_decisions),
        "the boundary that saves most on 15 pts worse, known in advance (both ways)": by_looks(boundary_looks(optimal)),
    }


def design_table(difficulty: str, gates: int, seed: int, tasks: int = 89, samples: int = 3) -> list[str]:
    low, high = DIFFICULTY[difficulty]
    drift = (MUCH_WORSE - MARGIN.threshold) / (task_sd(difficulty, samples, MUCH_WORSE) / math.sqrt(tasks))
    first = sequential.first_look(tasks)
    best, caught, optimal = OptimalStopping(drift, tasks, first, ALPHA / 2).best()
    at_share, caught_at_share, _ = OptimalStopping(drift, tasks, first, sequential.FAIL_SHARE * ALPHA / 2).best()
    named = designs(tasks, optimal)
    judged = runs(seed, gates, tasks, samples, difficulty, list(named.values()))
    lines = [f"designs at {tasks} tasks × {samples} samples, difficulty {difficulty} (pass probabilities "
             f"{low}–{high}), margin {MARGIN}, {gates} gates per row, % of gates:",
             *header("design", [c for *_, c in RATES] + [c for _, c in SAVINGS])]
    for i, name in enumerate(named):
        lines.append(f"| {name} | " + " | ".join(row(judged, tasks, (i,))) + " |")
    lines.append(f"normal model, the task SD known (final z {drift:.2f} on 15 pts worse): the most any rule "
                 f"stopping on the running mean saves there at {100 * ALPHA / 2:g}% one-sided error is "
                 f"{100 * best:.1f}%, catching it {100 * caught:.0f}% of the time"
                 " (the last row's boundary; with the SD estimated, that row); at this gate's "
                 f"{100 * sequential.FAIL_SHARE * ALPHA / 2:g}%: {100 * at_share:.1f}%, catching it "
                 f"{100 * caught_at_share:.0f}%")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=10_000, help="simulated bake-offs per table cell")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rho", type=float, default=sequential.RHO, help="the fail side's spending exponent")
    parser.add_argument("--share", type=float, default=sequential.FAIL_SHARE,
                        help="the share of alpha/2 the fail side spends")
    parser.add_argument("--difficulty", choices=sorted(DIFFICULTY), action="append",
                        help="only this difficulty profile (repeatable; default all)")
    parser.add_argument("--designs", action="store_true",
                        help="compare ways to stop at 89 tasks × 3 samples instead of the gate's table")
    args = parser.parse_args()
    for difficulty in args.difficulty or DIFFICULTY:
        lines = design_table(difficulty, args.gates, args.seed) if args.designs else \
            table(difficulty, args.gates, args.seed, args.rho, args.share)
        print("\n".join(lines), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
