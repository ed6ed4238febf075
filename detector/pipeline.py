"""The detection pipeline: one micro-batch of canonical events in, alert updates out.

File replay and Kafka both call :meth:`Pipeline.process` with batches of events in log
order. Per batch:

1. ``features.enrich`` (SQL analysis, sensitivity, ID-number keys), per-statement
   signals (``features.access``), first-seen marks (``features.novelty``);
2. the statements big enough to judge alone are queued (statement scale), and the events
   go into the per-user 5-minute, hourly and daily windows (``features.windows``);
3. every window the watermark closed, and every queued statement the watermark passed,
   is *ready*. Ready items are taken in event-time order, one learning epoch (an hour of
   event time by default, ``learn_every_hours``) at a time: scored against the models as
   they stood at the epoch's start (:class:`detector.scoring.Scorer`), matched against
   the threat patterns (``detector/threats``), decided by the alert budget
   (``models.calibration``), grouped into alerts (``detector.alerts``). When an epoch
   is over, the models learn from its windows that raised no alert (no poisoning), and
   the budget from their scores.

Because models change only between epochs and items are taken in event-time order, the
alerts do not depend on how the input was cut into batches: a replay in one batch, in
many, or stopped and resumed from saved state gives the same alerts.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from detector.alerts import Alert
from detector.config import Config
from detector.detector_state import DetectorState, PartState, window_clock
from detector.peer_groups import PEER_CLUSTERS
from detector.rules.matching import match_rules, render_reasons
from detector.rules.schema import ThreatRule
from detector.scoring import Scorer
from features.access import event_features
from features.catalog import Catalog
from features.enrich import enrich
from features.novelty import SeenSets
from features.windows import SCALES, WINDOW_SCHEMA, WindowAggregator, statement_rows
from models.calibration import AlertBudget

if TYPE_CHECKING:
    from detector.metrics import Metrics

# DetectorState and PartState lived here: state files saved before pickle them by this
# module's name
__all__ = ["DetectorState", "PartState", "Pipeline"]

_SCALES: Final = ("statement", *SCALES)
_EPOCH: Final = dt.datetime.min.replace(tzinfo=dt.UTC)


def _so_far(items: pl.DataFrame) -> np.ndarray:
    """Rows that are an hour or day so far (ending before their window does)."""
    length = pl.col("scale").replace_strict(SCALES, default=None, return_dtype=pl.Duration("us"))
    partial = pl.col("window_end") < pl.col("window_start") + length
    return items.select(partial.fill_null(False)).to_series().to_numpy()


class Pipeline:
    """Wires features, models, threat patterns and alerts over micro-batches.

    Parameters
    ----------
    config
        The frozen configuration (roles, budget, lateness, learning period).
    catalog
        The sensitivity catalog.
    rules
        Threat patterns (:func:`detector.rules.schema.load_rules`).
    state
        Learned state to continue from (a fresh one when ``None``).
    id_key
        The ID-hash key of a fresh state (default: the config's, see
        :meth:`~detector.config.Config.id_hash_key`).
    """

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        rules: Sequence[ThreatRule],
        state: DetectorState | None = None,
        id_key: bytes | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.rules = tuple(rules)
        self.rules_by_id: Mapping[str, ThreatRule] = {r.id: r for r in self.rules}
        self.feedback = config.load_feedback()
        #: Event time between two learning steps of the models (``learn_every_hours``).
        self.epoch = dt.timedelta(hours=config.learn_every_hours)
        #: No window whose activity ends at or before this event time alerts (a warm
        #: start on history files): those windows only teach the models.
        self.quiet_until: dt.datetime | None = None
        #: The fraction of the whole stream this process judges (its partitions of the
        #: topic's): it gets that share of the alert budget, so a group of processes
        #: raises the alerts per day the config asks for, not that many each.
        self.budget_share = 1.0
        #: Where batches, scores and alerts are reported (``None``: nowhere).
        self.metrics: Metrics | None = None
        if state is None:
            state = DetectorState(
                id_key=config.id_hash_key() if id_key is None else id_key,
                scorer=Scorer(
                    service_roles=config.service_roles,
                    multivariate=config.multivariate,
                    peer_clusters=PEER_CLUSTERS if config.peer_clusters else 0,
                ),
            )
        self.state = state
        for scale in _SCALES:
            state.budgets.setdefault(scale, AlertBudget(alerts_per_day=config.alerts_per_day))
        self._role = config.role_expr()

    # -- per batch ---------------------------------------------------------------------

    def windows(self) -> WindowAggregator:
        """The process's windows, shared by every partition in step."""
        st = self.state
        if st.windows is None:
            st.windows = WindowAggregator(
                lateness=self.config.lateness_seconds, so_far=self.config.so_far
            )
        return st.windows

    def part(self, key: int) -> PartState:
        """The open state of input partition ``key`` (new when first seen)."""
        part = self.state.parts.get(key)
        if part is None:
            part = self.state.parts[key] = PartState(SeenSets(), self.windows())
        return part

    def process(self, events: pl.DataFrame, parts: pl.Series | None = None) -> list[Alert]:
        """Feed one batch of canonical events (log order); return alerts created or updated.

        ``parts``: the input partition of each event (Kafka); replay has one, ``0``.
        """
        started = time.perf_counter()
        signals, alerts = self._process(events, parts)
        if self.metrics is not None:
            self._report(events, signals, time.perf_counter() - started)
        return alerts

    def _report(self, events: pl.DataFrame, signals: pl.DataFrame, seconds: float) -> None:
        st = self.state
        assert self.metrics is not None
        self.metrics.judged(events, signals, seconds, st.scorer.users(), st.late_events)

    def _process(
        self, events: pl.DataFrame, parts: pl.Series | None
    ) -> tuple[pl.DataFrame, list[Alert]]:
        st = self.state
        if events.is_empty():
            return events, []
        enriched = enrich(events, self.catalog, id_key=st.id_key)
        if parts is not None:
            enriched = enriched.with_columns(_part=parts)
        signals = event_features(enriched, keep=("_part",) if parts is not None else ())
        st.count("statements", signals.height)
        if signals.is_empty():
            return signals, []
        if st.started is None:
            st.started = signals["event_time"].min()  # type: ignore[assignment]
        if parts is None:
            by_part = {0: signals.with_row_index("_row")}
        else:
            split = signals.with_row_index("_row").partition_by(
                "_part", as_dict=True, include_key=False
            )
            by_part = {int(k[0]): v for k, v in sorted(split.items())}  # type: ignore[call-overload]
        # first sightings per partition (they move with it); windows per aggregator, once
        # for all partitions in step, in the batch's order
        marked: dict[int, list[pl.DataFrame]] = {}
        for key, part_signals in by_part.items():
            part = self.part(key)
            rows = part.seen.mark(part_signals)
            part.users.update(rows["user"].unique().to_list())
            marked.setdefault(id(part.windows), []).append(rows)
            single = statement_rows(rows.drop("_row"), self.config.statement_min_rows)
            if single.height:
                part.pending = single if part.pending is None else pl.concat([part.pending, single])
        for windows in st.aggregators():
            frames = marked.get(id(windows))
            if frames:
                windows.add(pl.concat(frames).sort("_row").drop("_row"))
        self._sync()
        closed = [w.advance() for w in st.aggregators()]
        return signals, self._decide(pl.concat(closed), self._watermark())

    def _sync(self) -> None:
        """A partition out of step joins the process's windows when the clocks meet."""
        st = self.state
        main = self.windows()
        if st.out_of_step and len(st.out_of_step) == len(st.parts):
            # every partition was taken over: the one furthest behind leads (no one's
            # events become late)
            lead = min(st.out_of_step, key=lambda k: window_clock(st.parts[k].windows) or _EPOCH)
            del st.out_of_step[lead]
            st.lead(st.parts[lead].windows)
            main = st.parts[lead].windows
        now = window_clock(main)
        if now is None:
            return
        for key, behind in list(st.out_of_step.items()):
            part = st.parts[key]
            clock = window_clock(part.windows)
            if clock is None or (clock >= now if behind else now >= clock):
                del st.out_of_step[key]
                main.put(part.windows)
                part.windows = main

    def _watermark(self) -> dt.datetime | None:
        """Event time up to which every partition is complete."""
        marks = [m for w in self.state.aggregators() if (m := w.watermark) is not None]
        return min(marks) if marks else None

    def finish(self) -> list[Alert]:
        """Close every open window and decide everything left (end of input, no state)."""
        st = self.state
        closed = [w.flush() for w in st.aggregators()]
        started = time.perf_counter()
        alerts = self._decide(
            pl.concat(closed) if closed else pl.DataFrame(schema=WINDOW_SCHEMA), None
        )
        self._learn()
        if self.metrics is not None:
            empty = pl.DataFrame()
            self._report(empty, empty, time.perf_counter() - started)
        return alerts

    # -- deciding ----------------------------------------------------------------------

    def _ready(self, closed: pl.DataFrame, watermark: dt.datetime | None) -> pl.DataFrame:
        parts = [closed]
        for part in self.state.parts.values():
            if part.pending is None:
                continue
            if watermark is None:  # the end: everything
                parts.append(part.pending)
                part.pending = None
                continue
            mark = part.windows.watermark  # each partition's own clock
            if mark is not None:
                due = pl.col("window_end") <= mark
                parts.append(part.pending.filter(due))
                part.pending = part.pending.filter(~due)
        ready = pl.concat(parts, how="vertical_relaxed")
        # statement rows sort before the windows of the same instant: they are judged
        # against the baselines as they stood before that instant
        order = pl.col("scale").replace_strict({s: k for k, s in enumerate(_SCALES)})
        return ready.sort(pl.col("window_end"), order, pl.col("user"), pl.col("window_start"))

    def _decide(self, closed: pl.DataFrame, watermark: dt.datetime | None) -> list[Alert]:
        st = self.state
        ready = self._ready(closed, watermark)
        alerts: list[Alert] = []
        if ready.height:
            so_far = _so_far(ready)
            st.count("so_far", int(so_far.sum()))
            windows = (ready["scale"] != "statement").to_numpy() & ~so_far
            st.count("windows", int(windows.sum()))
            ready = ready.with_columns(_epoch=pl.col("window_end").dt.truncate(self.epoch))
            for (epoch,), part in ready.group_by("_epoch", maintain_order=True):
                assert isinstance(epoch, dt.datetime)
                if st.learn_epoch is not None and epoch > st.learn_epoch:
                    self._learn()
                # a late statement may belong to an epoch already learned: it is judged
                # now, and the epoch clock never runs backwards
                st.learn_epoch = epoch if st.learn_epoch is None else max(epoch, st.learn_epoch)
                alerts += self._judge(part.drop("_epoch"))
        done = watermark is not None and st.learn_epoch is not None
        if done and watermark >= st.learn_epoch + self.epoch:  # type: ignore[operator]
            self._learn()
        return alerts

    def _role_series(self, users: pl.Series) -> pl.Series:
        return users.to_frame("user").select(self._role).to_series()

    def _judge(self, items: pl.DataFrame) -> list[Alert]:
        st = self.state
        scored = st.scorer.score(items, self._role_series(items["user"]))
        if self.metrics is not None:
            self.metrics.scored(scored["scale"], scored["raw_score"])
        scored = scored.with_row_index("_item")
        alerted = np.zeros(scored.height, dtype=bool)
        alerts: list[Alert] = []
        matches = match_rules(self.rules, scored, render=False)
        if matches.height:
            st.count("matches", matches.height)
            # an analyst's "expected job": no alert, and the window teaches the baseline
            expected = self.feedback.expected_mask(matches)
            st.count("expected_job_matches", int(expected.sum()))
            matches = st.scorer.refine(matches.filter(~expected))
            thresholds = {s: b.threshold(self.budget_share) for s, b in st.budgets.items()}
            learning_until = st.started + dt.timedelta(hours=self.config.learning_hours)  # type: ignore[operator]
            passed = matches.filter(
                (pl.col("raw_score") >= pl.col("scale").replace_strict(thresholds))
                & (pl.col("window_end") > learning_until)
            )
            if self.quiet_until is not None:
                # a window whose activity all lies in the history stays quiet, even when
                # it closes after it (the day window of the history's last day)
                passed = passed.filter(pl.col("last_time") > self.quiet_until)
            if passed.height:
                passed = render_reasons(passed, self.rules_by_id)
                before = st.book.revisions() if self.metrics is not None else {}
                alerts = st.book.add_matches(passed.drop("_item"), self.rules_by_id)
                passed = self._drop_dismissed(passed, alerts)
                alerts = [st.book.get(a.id) for a in alerts]
                if self.metrics is not None:
                    self.metrics.alerted(alerts, before)
                alerted[passed["_item"].to_numpy()] = True
                st.scorer.note_alerts(passed["user"], passed["role"], passed["last_time"])
        # a window so far is judged, never learned: its window is learned whole when it ends
        learn = scored.drop("_item").with_columns(_alerted=pl.Series(alerted))
        st.to_learn.append(learn.filter(~pl.Series(_so_far(scored))))
        return alerts

    def _drop_dismissed(self, passed: pl.DataFrame, alerts: list[Alert]) -> pl.DataFrame:
        """Mark alerts an analyst closed as false positives; their matches are not
        alerts, so their windows teach the baselines."""
        dismissed = [a for a in alerts if a.id in self.feedback.dismissed]
        for alert in dismissed:
            self.state.book.mark(alert.id, "false_positive")
            passed = passed.filter(
                (pl.col("user") != alert.user)
                | (pl.col("last_time") < alert.start)
                | (pl.col("first_time") > alert.end)
            )
        return passed

    def _learn(self) -> None:
        st = self.state
        if not st.to_learn or st.learn_epoch is None:
            return
        done = pl.concat(st.to_learn, how="vertical_relaxed")
        st.to_learn = []
        alerted = done["_alerted"].to_numpy()
        done = done.drop("_alerted")
        st.scorer.learn(done, alerted)
        now = (st.learn_epoch + self.epoch).timestamp()
        scale = done["scale"].to_numpy()
        raw = done["raw_score"].to_numpy()
        for name, budget in st.budgets.items():
            rows = (scale == name) & ~alerted
            budget.learn_many(raw[rows], now)

    # -- reporting ---------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Every alert so far, final revisions, in (start, user, kind) order."""
        return self.state.book.alerts()
