"""``hanlab firmware``: OTA image files and the firmware catalogue.

* ``build OUT`` writes an emulated OTA file (ZCL 07-5123 §11.4) for a device model;
* ``add FILE --model M`` checks a file and catalogues it in ``firmware_images/``;
* ``list`` / ``info FILE_OR_REF`` show the catalogue and one image's header and
  sub-elements;
* ``verify [FILE…]`` checks files (or, with none, every catalogue entry against its
  sha256): one line per bad file, ``file: at byte N: reason``, exit status 2;
* ``transfers CAPTURE…`` and ``tracking …``: the OTA transfers seen in captures and the
  SIP#7 Firmware Distribution Tracking (see :mod:`hanlab.firmware.transfers`,
  :mod:`hanlab.firmware.tracking`);
* ``impact --before JOB… --after JOB…`` (or ``--across JOB…``, or two campaigns): the HAN
  impact of a CH firmware upgrade (:mod:`hanlab.firmware.impact`).
* ``rehearse [LAB] --image VERSION --pilot RIG…``: the lab rehearsal of a CH firmware
  roll-out on the emulated rigs, end to end (:mod:`hanlab.firmware.rehearsal`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hanlab.errors import BadInputError, FirmwareImageError

app = typer.Typer(help="OTA firmware images, the catalogue, transfers and SIP#7 tracking.",
                  no_args_is_help=True)

CatalogueOpt = Annotated[Path | None, typer.Option(
    "--catalogue", "-c", help="Catalogue folder (default $HANLAB_FIRMWARE_IMAGES or "
                              "./firmware_images).")]


def _catalogue(folder: Path | None) -> Any:
    from hanlab.firmware.catalogue import Catalogue, default_catalogue_folder

    return Catalogue(folder or default_catalogue_folder())


def _hex(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise BadInputError(f"{what} {text!r} is not a number (e.g. 0x1234)") from None


@app.command("build")
def build(
    out: Annotated[Path, typer.Argument(help="OTA file to write.")],
    model: Annotated[str, typer.Option("--model", help="Device model (its OTA identity).")
                     ] = "emu-esme-a",
    file_version: Annotated[str | None, typer.Option(
        "--file-version", help="File version, e.g. 0x01010000 (default: one above the "
                               "model's own).")] = None,
    size_octets: Annotated[int, typer.Option("--size-octets", min=300,
                                             help="Approximate file size in octets.")] = 2048,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="No signature.")] = False,
) -> None:
    """Write an emulated OTA Upgrade file for a device model (never a real image).

    Example:

      hanlab firmware build /tmp/esme.ota --model emu-esme-a --size-octets 768000
    """
    from hanlab.firmware.emulated import emulated_image, identity_of
    from hanlab.firmware.ota_file import build_ota_file, emulated_payload

    version = None if file_version is None else _hex(file_version, "--file-version")
    if unsigned:
        ident = identity_of(model)
        v = ident.file_version + 0x10000 if version is None else version
        data = build_ota_file(manufacturer_code=ident.manufacturer_code,
                              image_type=ident.image_type, file_version=v,
                              payload=emulated_payload(max(size_octets - 62, 1), model),
                              header_string=f"hanlab {model} {v:08X}", sign=False)
    else:
        data = emulated_image(model, file_version=version, size_octets=size_octets)
    out.write_bytes(data)
    sys.stderr.write(f"wrote {out} ({len(data)} octets)\n")


@app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="OTA Upgrade file.")],
    model: Annotated[str, typer.Option("--model", help="Device model it is for.")],
    cpl: Annotated[str, typer.Option("--cpl", help="CPL reference.")] = "",
    note: Annotated[str, typer.Option("--note", help="Release note.")] = "",
    unsigned: Annotated[bool, typer.Option(
        "--unsigned", help="Accept an image without a signature.")] = False,
    catalogue: CatalogueOpt = None,
) -> None:
    """Check an OTA file and add it to the catalogue (copied into its folder).

    Example:

      hanlab firmware add esme-1.1.ota --model emu-esme-a --cpl CPL-0042 --note "fixes X"
    """
    cat = _catalogue(catalogue)
    entry = cat.add(file, device_model=model, cpl_reference=cpl, release_note=note,
                    requires_signature=not unsigned)
    sys.stdout.write(f"added {entry.path} ({entry.device_model} 0x{entry.file_version:08X}, "
                     f"sha256 {entry.sha256[:16]}…)\n")


@app.command("list")
def list_images(
    catalogue: CatalogueOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """List the catalogue: model, versions, size, sha256, CPL reference, release note.

    Example:

      hanlab firmware list -c firmware_images
    """
    cat = _catalogue(catalogue)
    for e in cat.entries:
        if as_json:
            sys.stdout.write(json.dumps(e.as_yaml()) + "\n")
        else:
            sys.stdout.write(
                f"{e.device_model:<12} mfr 0x{e.manufacturer_code:04X} type "
                f"0x{e.image_type:04X} ver 0x{e.file_version:08X} {e.size_octets:>8} B "
                f"{e.sha256[:12]} {e.cpl_reference or '-'} {e.path}  {e.release_note}\n")


def info_fields(image: Any) -> dict[str, Any]:
    """The header fields and sub-elements of an :class:`OtaImage` as plain data."""
    h = image.header
    return {
        "source": image.source, "size_octets": len(image.raw), "sha256": image.sha256,
        "header_version": f"0x{h.header_version:04X}",
        "header_length_octets": h.header_length_octets,
        "field_control": f"0x{h.field_control:04X}",
        "manufacturer_code": f"0x{h.manufacturer_code:04X}",
        "image_type": f"0x{h.image_type:04X}", "file_version": f"0x{h.file_version:08X}",
        "zigbee_stack_version": f"0x{h.zigbee_stack_version:04X}",
        "header_string": h.header_string, "total_image_size_octets": h.total_image_size_octets,
        "security_credential_version": h.security_credential_version,
        "upgrade_file_destination": None if h.upgrade_file_destination is None
        else f"{h.upgrade_file_destination:016X}",
        "hardware_versions": None if h.minimum_hardware_version is None
        else [h.minimum_hardware_version, h.maximum_hardware_version],
        "signed": image.signed,
        "sub_elements": [{"tag": f"0x{e.tag:04X}", "name": e.name, "offset": e.offset,
                          "length_octets": len(e.data)} for e in image.elements],
    }


@app.command("info")
def info(
    ref: Annotated[str, typer.Argument(help="OTA file, or a catalogue path / sha256 prefix.")],
    catalogue: CatalogueOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Show an OTA file's header fields and sub-elements (§11.4).

    Example:

      hanlab firmware info firmware_images/emu-esme-a_01010000.ota
    """
    from hanlab.firmware.ota_file import read_ota_file

    path = Path(ref)
    if not path.is_file():
        cat = _catalogue(catalogue)
        path = cat.file_of(cat.find(ref))
    fields = info_fields(read_ota_file(path))
    if as_json:
        sys.stdout.write(json.dumps(fields) + "\n")
        return
    for key, value in fields.items():
        if key != "sub_elements":
            sys.stdout.write(f"{key:<28} {value}\n")
    for e in fields["sub_elements"]:
        sys.stdout.write(f"  sub-element {e['tag']} {e['name']:<32} at byte {e['offset']:>7}"
                         f"  {e['length_octets']} octets\n")


@app.command("verify")
def verify(
    files: Annotated[list[Path] | None, typer.Argument(
        help="OTA files (none: every catalogue entry).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Check against this device model's OTA identity.")] = None,
    catalogue: CatalogueOpt = None,
) -> None:
    """Check OTA files: one line per bad file (``file: at byte N: reason``), exit 2.

    Checks the magic, header and total sizes, sub-element tags and sizes, the integrity
    code / emulated signature, the 750 KB limit (seed 000) and, with --model, manufacturer
    code, image type, a newer file version and a signature where the device requires one.
    With no files, every catalogue entry is checked, with its sha256.

    Example:

      hanlab firmware verify new-esme.ota --model emu-esme-a
    """
    from hanlab.firmware.emulated import identity_of
    from hanlab.firmware.ota_file import check_ota_image, read_ota_file

    bad: list[str] = []
    good = 0
    if files:
        target = None if model is None else identity_of(model).target(name=f"model {model}")
        for file in files:
            try:
                image = read_ota_file(file)
            except FirmwareImageError as error:
                bad.append(str(error))
                continue
            problems = check_ota_image(image, target)
            if problems:
                bad.append(str(problems[0].error(str(file))))
            else:
                good += 1
    else:
        cat = _catalogue(catalogue)
        for entry in cat.entries:
            try:
                found = cat.verify_entry(entry)
            except FirmwareImageError as error:
                bad.append(str(error))
                continue
            if found:
                bad.append(f"{cat.file_of(entry)}: at byte {found[0][0]}: {found[0][1]}")
            else:
                good += 1
    for line in bad:
        sys.stderr.write(f"hanlab: error: {line}\n")
    sys.stdout.write(f"{good} good, {len(bad)} bad\n")
    if bad:
        raise typer.Exit(2)


def register(root: typer.Typer) -> None:
    """Add the ``firmware`` group to the hanlab CLI."""
    root.add_typer(app, name="firmware")



@app.command("transfers")
def transfers(
    captures: Annotated[list[Path], typer.Argument(help="pcap/pcapng captures (any bands).")],
    keys: Annotated[Path | None, typer.Option("--keys", help="YAML keys file.")] = None,
    duis_log: Annotated[Path | None, typer.Option(
        "--duis-log", help="DUIS log: tie each transfer to its SR 11.1.")] = None,
    gap_s: Annotated[float, typer.Option("--gap-s", help="A pause between block requests "
                                                        "longer than this is a gap.")] = 5.0,
    catalogue: CatalogueOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """OTA transfers in captures: per device and image, blocks, retries, gaps, missing
    ranges, duration and throughput per band; the image reassembled and checked against
    the catalogue sha256 when the keys allow.

    Example:

      hanlab firmware transfers captures/run1/*.pcapng --keys dual.keys.yaml
    """
    from hanlab.firmware.catalogue import Catalogue, default_catalogue_folder
    from hanlab.firmware.transfers import (
        format_transfer,
        match_catalogue,
        tie_to_requests,
        track_transfers,
        transfers_json,
    )
    from hanlab.zigbee.keyring import Keyring

    ring = Keyring.load(keys) if keys is not None else Keyring()
    found = track_transfers(captures, ring, gap_s=gap_s)
    match_catalogue(found, Catalogue(catalogue or default_catalogue_folder()))
    if duis_log is not None:
        tie_to_requests(found, duis_log)
    if as_json:
        sys.stdout.write(transfers_json(found))
        return
    for t in found:
        sys.stdout.write(format_transfer(t) + "\n")
    if not found:
        sys.stdout.write("no OTA transfer seen (without keys only addresses show: give "
                         "--keys)\n")


tracking_app = typer.Typer(help="SIP#7 Firmware Distribution Tracking (seed 003).",
                           no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")
StoreOpt = Annotated[str, typer.Option("--store", help=(
    "Tracking store: a JSON file, or the results store's database URL "
    "(sqlite:///out/hanlab.db, postgresql+psycopg://host/db)."))]


@tracking_app.command("update")
def tracking_update(
    duis_log: Annotated[Path, typer.Option("--duis-log", help="The rig's DUIS log.")],
    store: StoreOpt = "state/firmware-tracking.json",
    captures: Annotated[list[Path] | None, typer.Argument(help="HAN captures.")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="YAML keys file.")] = None,
    rig: Annotated[Path | None, typer.Option(
        "--rig", help="Rig file: device types (only ESME/GSME/PPMID/HCALCS tracked).")] = None,
) -> None:
    """Derive Processing / Completion Status per SR 11.1 and device from a DUIS log (and
    the OTA transfers in captures), into the store; purge beyond 30 days.

    Example:

      hanlab firmware tracking update --duis-log run/rig_duis.jsonl run/*.pcapng --keys k.yaml

      hanlab firmware tracking update --duis-log run/rig_duis.jsonl --store sqlite:///out/hanlab.db
    """
    import time

    from hanlab.duis.log import read_duis_log
    from hanlab.firmware.tracking import TrackingStore, update_from_duis_log
    from hanlab.firmware.transfers import tie_to_requests, track_transfers
    from hanlab.zigbee.keyring import Keyring

    types: dict[str, str] = {}
    if rig is not None:
        from hanlab.config import load_rig

        config, _ = load_rig(rig)
        types = {d.eui64.upper(): d.role.value for d in config.devices}
    found = []
    if captures:
        found = track_transfers(captures, Keyring.load(keys) if keys else Keyring())
        tie_to_requests(found, duis_log)
    tracking = TrackingStore(store)
    update_from_duis_log(tracking, list(read_duis_log(duis_log)), device_types=types,
                         transfers=found)
    purged = tracking.purge(time.time_ns())
    tracking.save()
    tracking.close()
    sys.stdout.write(f"{len(tracking.records)} tracked request/device pairs"
                     f"{f', {purged} purged (older than 30 days)' if purged else ''}\n")


@tracking_app.command("search")
def tracking_search(
    store: StoreOpt = "state/firmware-tracking.json",
    sr_id: Annotated[str | None, typer.Option("--sr-id", help="Service Request ID.")] = None,
    device_id: Annotated[str | None, typer.Option("--device-id", help="Device ID.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with the seed's columns.")
                      ] = False,
    history: Annotated[bool, typer.Option("--history", help="Every status change.")] = False,
) -> None:
    """Search by Service Request ID or by Device ID (exactly one).

    Example:

      hanlab firmware tracking search --device-id 00-DB-12-00-00-00-C1-01 --csv > fdt.csv
    """
    from hanlab.firmware.tracking import TrackingStore, rows_csv

    tracking = TrackingStore(store)
    try:
        found = tracking.search(sr_id=sr_id, device_id=device_id)
    finally:
        tracking.close()
    if as_csv:
        sys.stdout.write(rows_csv(found))
        return
    for rec in found:
        row = rec.row()
        sys.stdout.write("  ".join(f"{k}: {v}" for k, v in row.items()) + "\n")
        if history:
            for c in rec.history:
                sys.stdout.write(f"    {c.ts_ns} {c.status} ({c.source}: {c.reason})\n")


@tracking_app.command("reset")
def tracking_reset(
    sr_id: Annotated[str, typer.Option("--sr-id", help="Service Request ID.")],
    device_id: Annotated[str, typer.Option("--device-id", help="Device ID.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    store: StoreOpt = "state/firmware-tracking.json",
) -> None:
    """Reset by DCC (the Service Centre's manual reset; the request may be sent again)."""
    import time

    from hanlab.firmware.tracking import TrackingStore

    tracking = TrackingStore(store)
    rec = tracking.reset(sr_id, device_id, time.time_ns(), reason)
    tracking.save()
    tracking.close()
    sys.stdout.write(f"{rec.request_id} {rec.device_id}: {rec.current.status}, "
                     f"{rec.completion_status}\n")


@tracking_app.command("purge")
def tracking_purge(
    store: StoreOpt = "state/firmware-tracking.json",
    retention_days: Annotated[int, typer.Option("--retention-days", min=1)] = 30,
) -> None:
    """Delete records older than the retention window (seed 003: 30 days)."""
    import time

    from hanlab.firmware.tracking import TrackingStore

    tracking = TrackingStore(store)
    purged = tracking.purge(time.time_ns(), retention_days)
    tracking.save()
    tracking.close()
    sys.stdout.write(f"{purged} purged, {len(tracking.records)} kept\n")


JobsOpt = Annotated[list[str] | None, typer.Option(
    help="Job id (results store or --jobs folder), job.json file, or a running daemon's "
         "job; repeat the option for several.")]


@app.command("impact")
def impact(
    before: JobsOpt = None,
    after: JobsOpt = None,
    across: Annotated[list[str] | None, typer.Option(
        help="Jobs that contain the upgrade (ch-firmware-upgrade): each split at its "
             "upgrade step.")] = None,
    before_campaign: Annotated[str | None, typer.Option(
        help="Campaign id whose jobs are the before side.")] = None,
    after_campaign: Annotated[str | None, typer.Option(
        help="Campaign id whose jobs are the after side.")] = None,
    jobs: Annotated[Path, typer.Option("--jobs", help="Jobs folder of a lab output "
                                                      "(its results store beside it).")
                    ] = Path("captures/jobs"),
    db: Annotated[str | None, typer.Option(
        "--db", help="Results store URL for campaigns (default SQLite beside --jobs).")
                  ] = None,
    segment: Annotated[str, typer.Option(help="Timing segment compared.")] = "end_to_end",
    alpha: Annotated[float, typer.Option(help="Significance level of the test.")] = 0.05,
    confidence: Annotated[float, typer.Option(help="Confidence of the interval.")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="IMPACT as JSON on stdout.")
                       ] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write the HTML impact report (tables and plots).")] = None,
) -> None:
    """Compare HAN timings before and after a CH firmware upgrade (SECMP0024 req. 6).

    Per band x SR variant x device: medians before and after, their difference with a
    bootstrap confidence interval, the Hodges-Lehmann shift and a two-sided Mann-Whitney
    U test; SR failure rates; each device's rejoins after the CH reboots and the devices
    that did not come back. Add the JSON to a campaign report's data as "ch_impact" to
    get the same section there.

    Examples:

      hanlab firmware impact --before j-20261201-0101 --after j-20261201-0202

      hanlab firmware impact --across j-20261201-0303 --json > impact.json

      hanlab firmware impact --before-campaign c-night-1 --after-campaign c-night-2 \\
        --html impact.html
    """
    import tempfile

    from hanlab.firmware.impact import ch_impact, impact_json, impact_text, split_across_upgrade

    if across and (before or after or before_campaign or after_campaign):
        raise BadInputError("give either --across or the before and after jobs, not both")
    with tempfile.TemporaryDirectory(prefix="hanlab-impact-") as work:
        if across:
            side_b, side_a = split_across_upgrade(_job_records(across, jobs, Path(work)))
        else:
            side_b = (_job_records(before or [], jobs, Path(work))
                      + _campaign_records(before_campaign, jobs, db))
            side_a = (_job_records(after or [], jobs, Path(work))
                      + _campaign_records(after_campaign, jobs, db))
            if not side_b or not side_a:
                raise BadInputError("no jobs before or after the upgrade",
                                    hint="give --before and --after (or --across JOB)")
    result = ch_impact(side_b, side_a, segment=segment, alpha=alpha, confidence=confidence)
    sys.stdout.write(impact_json(result) if as_json else impact_text(result))
    sys.stdout.flush()
    if html is not None:
        from hanlab.reports.impact_html import render_impact_report

        try:
            html.write_text(render_impact_report(result), encoding="utf-8")
        except OSError as error:
            raise BadInputError(f"{html}: cannot write the report: {error}") from None
        sys.stderr.write(f"wrote {html}\n")


def _job_records(refs: list[str], jobs: Path, work: Path) -> list[dict[str, Any]]:
    from hanlab.commands.reports import _record_and_captures

    return [_record_and_captures(ref, jobs, None, None, work, download=False)[0]
            for ref in refs]


def _campaign_records(campaign: str | None, jobs: Path, db: str | None) -> list[dict[str, Any]]:
    """The job records of a campaign's jobs (every attempt) in the results store."""
    if campaign is None:
        return []
    from hanlab.store import open_store
    from hanlab.store.schema import campaign_jobs

    store = open_store(db, jobs.parent)
    try:
        rows = store.rows(campaign_jobs, campaign_id=campaign)
        ids = [i for row in rows for i in [*(row.get("attempts") or []), row.get("job_id")]
               if i]
        records = [r for r in (store.get_job(i) for i in dict.fromkeys(ids)) if r]
    finally:
        store.close()
    if not records:
        raise BadInputError(f"campaign {campaign!r}: no job records in the results store",
                            hint="hanlab campaign list")
    return [dict(r) for r in records]


@app.command("rehearse")
def rehearse(
    image: Annotated[str, typer.Option(
        "--image", help="CH firmware version to roll out, e.g. CH-EMU-2.0.0.")],
    lab: Annotated[Path | None, typer.Argument(
        help="Lab file (default: the bundled emulated lab of two rigs).")] = None,
    chts_version: Annotated[str, typer.Option(help="CHTS version of the image.")
                            ] = "CHTS v1.1",
    zigbee_stack: Annotated[str, typer.Option(help="ZigBee PRO revision (R20..R23).")
                            ] = "R22",
    se_version: Annotated[str, typer.Option(help="ZigBee SE version (1.2a or 1.4).")
                          ] = "1.4",
    reboot_s: Annotated[float, typer.Option(help="Emulated seconds the CH reboots for.")
                        ] = 20.0,
    upgrade_timeout_s: Annotated[float, typer.Option(
        help="Host seconds to wait for a rig's devices after its CH upgrade (those not "
             "back by then fail the CH's outcome).")] = 120.0,
    pilot: Annotated[list[str] | None, typer.Option(
        "--pilot", help="Rig of the pilot group; repeat for several (default: the first "
                        "emulated rig). The other emulated rigs are the safe launch.")] = None,
    batch_size: Annotated[int, typer.Option(help="CHs per safe-launch batch.")] = 1,
    jobs_per_rig: Annotated[int, typer.Option(
        help="Times each rig's meter-reading job runs before and after.")] = 1,
    time_scale: Annotated[float, typer.Option(
        help="Emulated HAN seconds per host second.")] = 20.0,
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for the lab's records, the timeline and the impact report.")
                   ] = Path("rehearsal"),
) -> None:
    """Rehearse a CH firmware roll-out on the lab's emulated rigs, end to end.

    SECMP0024 in the lab: "before" meter-reading jobs on every rig; the DCC notifies the
    image; the Suppliers submit the pilot (the rigs named with --pilot) and its CHs
    really upgrade on their HANs; a Supplier's incident with emergency stop halts the
    roll-out (a deployment that falls due is held); the DCC proceeds; the safe launch
    goes out in batches; "after" jobs; the impact report per band x SR variant x device.
    Writes OUT/rehearsal.json (timeline, notices, deploy orders, outcomes, upgrade
    records, job ids), OUT/impact.json, OUT/impact.html and OUT/impact-RIG.html.

    Examples:

      hanlab firmware rehearse --image CH-EMU-2.0.0 --out /tmp/rehearsal

      hanlab firmware rehearse labs/default.yaml --pilot emulated-dual-band \\
        --jobs-per-rig 2 --time-scale 50 --out /tmp/rehearsal
    """
    import asyncio
    from dataclasses import replace

    from pydantic import ValidationError

    from hanlab.config.loader import load_lab
    from hanlab.firmware.ch_image import ChImage
    from hanlab.firmware.impact import impact_text
    from hanlab.firmware.rehearsal import check_image, plan_for, rehearse_lab, write_outputs
    from hanlab.labdata import default_lab
    from hanlab.runtime.emulation import EmulationSettings

    try:
        ch_image = ChImage(version=image, chts_version=chts_version,
                           zigbee_stack=zigbee_stack, se_version=se_version,
                           reboot_s=reboot_s)
        emulation = EmulationSettings(time_scale=time_scale)
    except ValidationError as error:
        first = error.errors()[0]
        where = {"version": "image"}.get(str(first["loc"][0]), str(first["loc"][0]))
        raise BadInputError(f"--{where.replace('_', '-')} {first.get('input')!r}: "
                            f"{first['msg']}") from None
    loaded = load_lab(lab or default_lab())
    plan = replace(plan_for(loaded, pilot or [], batch_size=batch_size,
                            jobs_per_rig=jobs_per_rig), upgrade_timeout_s=upgrade_timeout_s)
    check_image(loaded, plan, ch_image)

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    say(f"rehearsal of {ch_image.describe()} on lab {loaded.config.name}: pilot "
        f"{', '.join(plan.pilot)}; safe launch {', '.join(plan.safe_launch)}")
    result = asyncio.run(rehearse_lab(loaded, ch_image, plan, out.absolute(),
                                      emulation=emulation, progress=say))
    written = write_outputs(result, out)
    sys.stdout.write(impact_text(result["impact"]))
    for path in written:
        sys.stderr.write(f"wrote {path}\n")
