"""Handler of ``mlship check-input`` (the container's ``check-input``): a Batch Transform input
read mini-batch by mini-batch as the service reads it (:mod:`app.input_check`)."""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import DataError


def check_input(args: argparse.Namespace) -> int:
    """Check ``--input`` against ``--model``'s input contract; 0 when it passes, else 1."""
    from app.input_check import QualityGate, input_files, write_report
    from app.input_check import check_input as check
    from core.drift import ReferenceBins
    from core.features import FeatureSchema
    from core.model import load_model
    from core.runtime import cpus_available
    from core.sources import local_bundle
    from core.transform import (
        MIB,
        PAYLOAD_MB_RANGE,
        check_features_attribute,
        check_id_columns,
    )

    low, high = PAYLOAD_MB_RANGE
    if not low <= args.max_payload_mb <= high:
        raise DataError(
            f"--max-payload-mb {args.max_payload_mb} must be between {low} and {high} "
            "(SageMaker's MaxPayloadInMB range): give the transform job's."
        )
    check_id_columns(args.id_columns, args.content_type)
    check_features_attribute(args.features_attribute, args.content_type)
    if args.input.is_dir():
        root, paths = args.input, input_files(args.input)
    elif args.input.is_file():
        root, paths = args.input.parent, [args.input]
    else:
        raise DataError(f"--input {args.input} is neither a file nor a directory.")
    for limit in (args.max_missing_percent, args.max_out_of_range_percent):
        if limit is not None and not 0 <= limit <= 100:
            raise DataError(f"A --max-*-percent of {limit:g} is not a share: give 0-100.")
    with local_bundle(args.model, what="--model") as local:
        manifest = load_model(local, estimator=False).manifest
    schema = FeatureSchema(manifest, refuse_unseen=args.unseen_categories == "refuse")
    gate = QualityGate(
        ReferenceBins(manifest), args.max_missing_percent, args.max_out_of_range_percent
    )
    report = check(
        paths,
        root,
        schema,
        args.content_type,
        args.max_payload_mb * MIB,
        gate,
        cpus_available(),
        args.compression,
        args.id_columns,
        args.features_attribute,
    )
    print(report.summary())
    # A processing container that runs as a non-root user may find SageMaker's output
    # directories read-only: the verdict (the exit code) stands, and what cannot be written
    # goes to the job's log.
    if args.report is not None:
        try:
            write_report(report, args.report)
        except OSError as e:
            print(f"warning: cannot write {args.report} ({e}); the report:", file=sys.stderr)
            print(json.dumps(report.as_json()))
    if args.message is not None and not report.passed:
        try:
            args.message.parent.mkdir(parents=True, exist_ok=True)
            args.message.write_bytes(report.exit_message())
        except OSError as e:
            print(f"warning: cannot write {args.message} ({e})", file=sys.stderr)
    return 0 if report.passed else 1
