"""Registry methods of records: datasets, and a run's metric rows, checkpoint files and artifacts.

A repository over :class:`crmse_cli.registry.database.Database` (its typed sessions and writes)
and a base of :class:`crmse_cli.registry.store.Registry`, as :mod:`crmse_cli.registry.sweeps` is.
Rows are returned as frozen dataclasses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.registry._values import jsonable, now, to_info
from crmse_cli.registry.database import Database
from crmse_cli.registry.entities import ArtifactInfo, CheckpointInfo, DatasetInfo, Metric
from crmse_cli.registry.tables import ArtifactRow, CheckpointRow, DatasetRow, MetricRow
from crmse_cli.text import check_name


class RecordStore(Database):
    """Datasets, and the metrics, checkpoints and artifacts of runs (a base of ``Registry``)."""

    # -- datasets ------------------------------------------------------------------------------
    def add_dataset(
        self,
        *,
        name: str,
        source: str,
        sha256: str,
        path: str,
        n_frames: int,
        n_atoms: int,
        species: list[int],
        units: Mapping[str, object],
        splits: Mapping[str, object],
        meta: Mapping[str, object],
    ) -> DatasetInfo:
        """Register (or replace) dataset ``name``."""
        check_name("dataset name", name)
        values = dict(
            source=source,
            sha256=sha256,
            path=str(path),
            n_frames=int(n_frames),
            n_atoms=int(n_atoms),
            species=[int(z) for z in species],
            units=jsonable(units),
            splits=jsonable(splits),
            meta=jsonable(meta),
            created=now(),
        )

        def op(s: Session) -> DatasetInfo:
            row = s.get(DatasetRow, name)
            if row is None:
                row = DatasetRow(name=name, **values)
                s.add(row)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            s.flush()
            return to_info(DatasetInfo, row)

        return self._write(op)

    def find_dataset(self, name: str) -> DatasetInfo | None:
        """Dataset ``name``, or None when it is not registered."""
        with self._session() as s:
            row = s.get(DatasetRow, name)
            return to_info(DatasetInfo, row) if row else None

    def get_dataset(self, name: str) -> DatasetInfo:
        """Dataset ``name``; NotFoundError (with the fetch command) when it is not registered."""
        info = self.find_dataset(name)
        if info is None:
            raise NotFoundError(
                f"dataset {name!r} is not registered; run `crmse fetch rmd17 {name}` (see `crmse datasets`)"
            )
        return info

    def list_datasets(self) -> list[DatasetInfo]:
        """Every registered dataset, by name."""
        with self._session() as s:
            return [to_info(DatasetInfo, r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.name))]

    # -- metrics -------------------------------------------------------------------------------
    def log_metric(
        self,
        run_id: str,
        *,
        name: str,
        value: float,
        unit: str,
        step: int | None = None,
        split: str | None = None,
    ) -> None:
        """Write one metric row (see :meth:`log_metrics`)."""
        self.log_metrics(run_id, [Metric(name=name, value=value, unit=unit, step=step, split=split)])

    def log_metrics(self, run_id: str, rows: Iterable[Metric]) -> None:
        """Write many metric rows in one transaction. Non-finite values are refused."""
        logged = now()
        objs = []
        for r in rows:
            value = float(r.value)
            if not math.isfinite(value):
                raise CrmseError(f"metric {r.name} of run {run_id} is {value}; log only finite values")
            objs.append(
                MetricRow(
                    run_id=run_id,
                    name=r.name,
                    value=value,
                    unit=r.unit,
                    step=None if r.step is None else int(r.step),
                    split=r.split,
                    time=logged,
                )
            )
        if objs:
            try:
                self._write(lambda s: s.add_all(objs))
            except IntegrityError as exc:  # the run's foreign key: no such run
                raise NotFoundError(f"cannot log metrics: no run {run_id} in this registry") from exc

    def metrics(self, run_id: str, *, name: str | None = None) -> list[Metric]:
        """The rows of a run's metrics (of ``name`` when given), by step; final values last."""
        with self._session() as s:
            q = select(MetricRow).where(MetricRow.run_id == run_id)
            if name is not None:
                q = q.where(MetricRow.name == name)
            q = q.order_by(MetricRow.step.is_(None), MetricRow.step, MetricRow.id)
            return [to_info(Metric, r) for r in s.scalars(q)]

    def final_metrics(self, run_id: str) -> dict[str, Metric]:
        """The last logged value of every metric name (by step, then insertion)."""
        out: dict[str, Metric] = {}
        with self._session() as s:
            q = select(MetricRow).where(MetricRow.run_id == run_id).order_by(MetricRow.id)
            rows = list(s.scalars(q))
        best: dict[str, tuple[tuple[int, int], MetricRow]] = {}
        for r in rows:
            key = (r.step if r.step is not None else 2**62, r.id)
            if r.name not in best or key >= best[r.name][0]:
                best[r.name] = (key, r)
        for name, (_, r) in best.items():
            out[name] = to_info(Metric, r)
        return out

    # -- checkpoints and artifacts -------------------------------------------------------------
    def add_checkpoint(
        self, run_id: str, *, path: str, sha256: str, step: int, format_version: int, tag: str
    ) -> CheckpointInfo:
        """Register a checkpoint file just written (call it after the file is in place).

        A file is rewritten in place (``last.pt`` every epoch, again after a resume): its row is
        updated, so the registry never keeps a stale checksum of a file that changed.
        """
        values = dict(
            sha256=sha256, step=int(step), format_version=int(format_version), tag=tag, created=now()
        )

        def op(s: Session) -> CheckpointInfo:
            q = select(CheckpointRow).where(CheckpointRow.run_id == run_id, CheckpointRow.path == str(path))
            rows = list(s.scalars(q.order_by(CheckpointRow.id)))
            if rows:
                row = rows[-1]
                for stale in rows[:-1]:  # rows of one file from before this fix
                    s.delete(stale)
                for k, v in values.items():
                    setattr(row, k, v)
            else:
                row = CheckpointRow(run_id=run_id, path=str(path), **values)
                s.add(row)
            s.flush()
            return to_info(CheckpointInfo, row)

        return self._write(op)

    def checkpoint_at(self, path: str) -> CheckpointInfo | None:
        """The newest registered checkpoint row of file ``path``, if any."""
        with self._session() as s:
            q = select(CheckpointRow).where(CheckpointRow.path == str(path)).order_by(CheckpointRow.id.desc())
            row = s.scalars(q).first()
            return to_info(CheckpointInfo, row) if row else None

    def checkpoints(self, run_id: str) -> list[CheckpointInfo]:
        """The checkpoints of a run, in the order they were registered."""
        with self._session() as s:
            q = select(CheckpointRow).where(CheckpointRow.run_id == run_id).order_by(CheckpointRow.id)
            return [to_info(CheckpointInfo, r) for r in s.scalars(q)]

    def add_artifact(
        self, run_id: str, *, kind: str, path: str, sha256: str, meta: Mapping[str, object] | None = None
    ) -> ArtifactInfo:
        """Register a file run ``run_id`` produced."""

        def op(s: Session) -> ArtifactInfo:
            row = ArtifactRow(
                run_id=run_id,
                kind=kind,
                path=str(path),
                sha256=sha256,
                meta=jsonable(meta or {}),
                created=now(),
            )
            s.add(row)
            s.flush()
            return to_info(ArtifactInfo, row)

        return self._write(op)

    def artifacts(self, run_id: str, *, kind: str | None = None) -> list[ArtifactInfo]:
        """The artifacts of a run (of ``kind`` when given), in the order they were registered."""
        with self._session() as s:
            q = select(ArtifactRow).where(ArtifactRow.run_id == run_id)
            if kind is not None:
                q = q.where(ArtifactRow.kind == kind)
            return [to_info(ArtifactInfo, r) for r in s.scalars(q.order_by(ArtifactRow.id))]
