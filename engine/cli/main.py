"""The `dyadic` command line: one console script with subcommands.

    dyadic replay | data ls | data sample | train | export | eval | serve | probe | profile

Each subcommand's options are in `dyadic <command> --help` (built below, the one source of truth)
and in README.md.

Heavy imports (torch, pyrender, PyAV) happen inside the subcommands, so `dyadic --help` is instant.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from dyadic.models.config import DEFAULT_PAST_NOISE

from .options import (
    UserError,
    non_negative_float,
    parse_decimate,
    parse_size,
    port,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from dyadic.engine.serve.tls import Certificate


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dyadic")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _data_root(arg: str | None) -> Path:
    from dyadic.datasets import default_sample_root

    if arg is None:
        return default_sample_root()
    root = Path(arg).expanduser()
    if not root.exists():
        raise UserError(f"--data {arg}: no such folder")
    return root


def _replay_settings(args: argparse.Namespace):
    from dyadic.engine.offline.batch import ReplaySettings

    return ReplaySettings(
        seconds=args.seconds,
        size=args.size,
        gl=args.gl,
        msaa=args.msaa,
        audio=args.audio,
        model=args.model,
        seed=args.seed,
        ghost=args.ghost,
        captions=not args.no_captions,
        body_model=args.body_model,
    )


def cmd_replay(args: argparse.Namespace) -> int:
    if args.all:
        return cmd_replay_all(args)
    from tqdm import tqdm

    from dyadic.engine.offline.batch import render_clip

    out = args.out or "out/replay.mp4"
    if Path(out).suffix.lower() != ".mp4":
        raise UserError(f"--out {out}: replay writes MP4 video; give a name ending in .mp4")
    root = _data_root(args.data)
    with tqdm(unit="frame", desc="replay", disable=args.quiet) as bar:
        result = render_clip(
            root,
            args.clip,
            out,
            _replay_settings(args),
            progress=bar.update,
            log=lambda line: print(line, file=sys.stderr),
            total=lambda n: setattr(bar, "total", n),
        )
    print(
        f"{result.frames} frames at {result.fps:.3f} fps ({result.seconds:.1f} s) in "
        f"{result.wall_seconds:.1f} s: {result.speed:.1f}x real time [{result.backend}: {result.gl_renderer}]",
        file=sys.stderr,
    )
    print(result.path)
    return 0


def cmd_replay_all(args: argparse.Namespace) -> int:
    from dyadic.engine.offline.batch import replay_all

    if args.clip is not None:
        raise UserError("--all renders every interaction: give no clip id with it")
    folder = Path(args.out or "out/replay")
    if folder.suffix.lower() == ".mp4":
        raise UserError(f"--out {args.out}: with --all, --out is a folder (one MP4 per interaction)")
    root = _data_root(args.data)
    batch = replay_all(
        root, folder, _replay_settings(args), ray=args.ray, workers=args.workers, progress=not args.quiet
    )
    report = batch.report
    if batch.skipped:
        print(f"{len(batch.skipped)} clip(s) already rendered in {folder}: skipped", file=sys.stderr)
    for line in report.summary("clip"):
        print(line, file=sys.stderr)
    if report.seconds > 0 and report.done:
        print(
            f"{batch.clip_seconds:.1f} clip-seconds in {report.seconds:.1f} s: "
            f"{batch.clip_seconds / report.seconds:.2f} clip-seconds per second",
            file=sys.stderr,
        )
    print(folder)
    return 1 if report.failed else 0


def cmd_data_ls(args: argparse.Namespace) -> int:
    from dyadic.datasets import scan

    root = _data_root(args.dir)
    catalog = scan(root)
    infos = catalog.interactions
    if args.json:
        rows = [
            {
                "id": i.id,
                "dataset": i.dataset,
                "participants": i.participants,
                "frames": i.n_frames,
                "fps": i.fps,
                "duration": round(i.duration, 3),
                "groups": i.groups,
                "problems": i.problems,
            }
            for i in infos
        ]
        print(json.dumps({"root": str(root), "interactions": rows, "skipped": catalog.problems}, indent=2))
        return 0
    header = ("id", "dataset", "participants", "frames", "fps", "duration", "features", "problems")
    table = [header] + [
        (
            i.id,
            i.dataset,
            " ".join(i.participants),
            str(i.n_frames),
            f"{i.fps:.3f}",
            f"{i.duration:.1f}s",
            ",".join(i.families) or "-",
            str(len(i.problems)) if i.problems else "-",
        )
        for i in infos
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    problems = [(i.id, p) for i in infos for p in i.problems] + [("skipped", p) for p in catalog.problems]
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for clip, p in problems:
            print(f"  {clip}: {p}")
    print(f"\n{len(infos)} interaction(s) in {root}")
    return 0


def cmd_data_index(args: argparse.Namespace) -> int:
    from dyadic.datasets import scan

    root = _data_root(args.dir)
    catalog = scan(root, workers=args.workers, progress=not args.quiet)
    done = catalog.report
    assert done is not None  # scanned through the index
    where = done.location or "none (the cache cannot be written)"
    print(
        f"{len(catalog.entries)} interaction(s) and {len(catalog.problems)} problem line(s) in {root}\n"
        f"{done.files} file(s) listed, {done.read} read, {done.removed} gone since the last scan, "
        f"{done.groups_scanned} group(s) scanned, in {done.seconds:.2f} s\nindex: {where}",
        file=sys.stderr,
    )
    return 0


def cmd_data_sample(args: argparse.Namespace) -> int:
    from dyadic.datasets.sample import generate_sample

    out = Path(args.out_dir).expanduser()
    generate_sample(out, format=args.format, interactions=args.interactions, seconds=args.seconds, seed=args.seed)
    print(out)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from dyadic.models.prepare import PrepareOptions, prepare

    opts = PrepareOptions(
        data=str(_data_root(args.data)),
        out=args.out,
        format=args.format,
        val_fraction=args.val_fraction,
        chunk_frames=args.chunk_frames,
        shard_frames=args.shard_frames,
        ray=args.ray,
        workers=args.workers,
        progress=not args.quiet,
    )
    manifest = prepare(opts, log=lambda line: print(line, file=sys.stderr))
    if not manifest["complete"]:
        print(f"dyadic: incomplete: run the same command again to resume ({args.out})", file=sys.stderr)
        return 1
    totals = manifest["totals"]
    print(
        f"{args.out}: {manifest['dataset']}, train {totals['train']['shards']} shard(s) "
        f"{totals['train']['frames']} frames, validation {totals['validation']['shards']} shard(s) "
        f"{totals['validation']['frames']} frames",
    )
    return 0


def _add_ray_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--ray",
        metavar="HOST:PORT",
        help=f"run the {what} on this Ray cluster (what `ray start --head` printed); default: a local Ray",
    )
    p.add_argument(
        "--workers", type=positive_int, metavar="N", help="CPUs of the local Ray (default: all of this machine's)"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from dyadic.models.train import TrainOptions, train

    opts = TrainOptions(
        data=str(_data_root(args.data)),
        out=args.out,
        format=args.format,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
        val_fraction=args.val_fraction,
        ccc_weight=args.ccc_weight,
        past_noise=args.past_noise,
        progress=not args.quiet,
        buffer_chunks=args.buffer_chunks,
        workers=args.workers or 1,
        ray=args.ray,
    )
    if opts.ray is not None and opts.workers < 2:
        raise UserError("--ray: give --workers N (2 or more) for data-parallel training on the cluster")
    if opts.workers > 1:
        from dyadic.models.distributed import train_with_ray

        best = train_with_ray(opts, log=lambda line: print(line, file=sys.stderr))
    else:
        best = train(opts, log=lambda line: print(line, file=sys.stderr))
    print(best)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dyadic.models.export import export_onnx
    from dyadic.models.train import load_checkpoint

    if not Path(args.checkpoint).is_file():
        raise UserError(f"{args.checkpoint}: no such checkpoint")
    model = load_checkpoint(args.checkpoint)
    out = export_onnx(model, args.out, source=str(args.checkpoint))
    print(f"{model.step_parameters():,} parameters, {out.stat().st_size / 1e6:.2f} MB", file=sys.stderr)
    print(out)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dyadic.datasets import scan
    from dyadic.models.evaluate import beaten_by, evaluate, markdown_table
    from dyadic.models.shipped import default_model_path

    root = _data_root(args.data)
    model = args.model
    formats = [e.info.dataset for e in scan(root).entries]
    if not formats:
        raise UserError(f"{root}: no interactions found")
    if model is None:
        model = default_model_path(args.format or formats[0])
    report = evaluate(
        root,
        model,
        samples=args.samples,
        out=args.out,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        log=lambda line: print(line, file=sys.stderr),
        ray=args.ray,
        workers=args.workers,
    )
    print(markdown_table(report))
    scored = report["dataset"]
    others = {f: formats.count(f) for f in sorted(set(formats)) if f != scored}
    for fmt, count in others.items():
        print(
            f"left out: {count} {fmt} interaction(s): the model scores {scored} data only "
            f"(run again with --format {fmt}, or a {fmt} --model)",
            file=sys.stderr,
        )
    for row, metric_names in beaten_by(report).items():
        print(f"note: the model loses to the {row!r} baseline on {', '.join(metric_names)}", file=sys.stderr)
    print(f"written: {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'metrics.md'}", file=sys.stderr)
    return 0


def serve_models(model: str | None, found: set[str]) -> dict[str, Path]:
    """dataset -> model file: the one given (its own dataset), else the shipped default of every
    dataset `found` under the data root (and Seamless's for the microphones)."""
    from dyadic.models.runtime import load_runtime
    from dyadic.models.shipped import default_model_path

    if model is not None:
        if model == "none":
            return {}
        path = Path(model).expanduser()
        return {load_runtime(path, "cpu").layout.spec_name: path}
    return {d: default_model_path(d) for d in sorted(found | {"seamless"})}


def cmd_profile(args: argparse.Namespace) -> int:
    from ..profiling.report import run_profile, table, write_all
    from ..profiling.run import ProfileRequest

    out = Path(args.out)
    print(
        f"dyadic profile: {args.sessions} session(s), {args.client} client, {args.seconds:.0f} s ...",
        file=sys.stderr,
        flush=True,
    )
    if args.mic and args.clip:
        raise UserError("profile: give a clip or --mic, not both")
    request = ProfileRequest(
        seconds=args.seconds,
        sessions=args.sessions,
        client=args.client,
        clip=args.clip,
        data=args.data,
        frame_ids=args.client == "chromium" and not args.no_frame_id and args.render == "server",
        microphone=args.mic,
        render=args.render,
    )
    run = run_profile(request)
    summary = write_all(run, out)
    print(table(summary))
    print(f"wrote {out / 'trace.jsonl'}, {out / 'summary.json'}, {out / 'report.html'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from dyadic.datasets import scan
    from dyadic.engine.serve.access import normalise_origin
    from dyadic.engine.serve.server import ServeOptions, Server, serve_forever

    root = _data_root(args.data)
    logging.getLogger("dyadic").setLevel(logging.INFO if args.verbose else logging.WARNING)
    certificate = _certificate(args)
    if args.body_model:  # checked here, not in each session's render worker
        from dyadic.renderer.avatar import find_body_model

        find_body_model(args.body_model)
    from concurrent.futures import ThreadPoolExecutor

    from dyadic.renderer import gl

    # Which GL platform renders is asked of a subprocess (~2 s, gl.probe): overlapped with the scan.
    with ThreadPoolExecutor(1, thread_name_prefix="dyadic-gl-probe") as probing:
        backend = probing.submit(gl.select_backend, args.gl)
        catalog = scan(root)  # once, for the models to load and the clip list
        backend.result()  # its error, if any, as before; the engine's own call then returns at once
    options = ServeOptions(
        data=root,
        catalog=catalog,
        models=serve_models(args.model, {e.info.dataset for e in catalog.entries}),
        host=args.host,
        port=args.port,
        size=args.size,
        max_sessions=args.max_sessions,
        ice_loopback=args.ice_loopback,
        stun=args.stun or [],
        turn=args.turn or [],
        ice_relay=args.ice_relay,
        body_model=args.body_model,
        gl_backend=args.gl,
        decimate=args.decimate,
        device=args.device,
        video_codec=args.video_codec,
        public_hosts=args.public_host or [],
        allow_origins=[normalise_origin(o) for o in args.allow_origin or []],
        offer_timeout_s=args.offer_timeout,
        certificate=certificate,
        render=args.render,
    )

    def ready(server: Server) -> None:
        models = ", ".join(f"{d}: {s.provider}" for d, s in server.engine.steppers.items()) or "none"
        print(
            f"dyadic serve: {len(server.engine.clips)} clip(s) from {root}; models {models}; "
            f"up to {args.max_sessions} session(s){'; ICE on loopback only' if args.ice_loopback else ''}",
            file=sys.stderr,
        )
        if certificate is not None:
            print(f"dyadic serve: TLS certificate SHA-256 {certificate.fingerprint}", file=sys.stderr)
        elif args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"dyadic serve: plain http on {args.host}: browsers on other machines will not give the page "
                "their microphone (add --ssl-self-signed, or --ssl-certfile and --ssl-keyfile)",
                file=sys.stderr,
            )
        print(f"open {server.url}", flush=True)

    try:
        asyncio.run(serve_forever(options, ready))
    except OSError as exc:
        hint = " (another server on that port? --port 0 picks a free one)" if exc.errno == errno.EADDRINUSE else ""
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}{hint}") from None
    return 0


def _certificate(args: argparse.Namespace) -> Certificate | None:
    """The TLS certificate `dyadic serve` was asked for (None: plain http)."""
    from dyadic.datasets import sample_cache_dir
    from dyadic.engine.serve import tls

    given = args.ssl_certfile or args.ssl_keyfile
    if given and args.ssl_self_signed:
        raise UserError("serve: give --ssl-certfile and --ssl-keyfile, or --ssl-self-signed, not both")
    if given and not (args.ssl_certfile and args.ssl_keyfile):
        raise UserError("serve: --ssl-certfile and --ssl-keyfile go together")
    try:
        if given:
            return tls.check_pair(args.ssl_certfile, args.ssl_keyfile)
        if args.ssl_self_signed:
            names = tls.certificate_names(args.host, args.public_host or [])
            return tls.self_signed(names, sample_cache_dir() / "tls")
    except tls.TlsError as exc:
        raise UserError(f"serve: {exc}") from None
    return None


def cmd_probe(args: argparse.Namespace) -> int:
    import asyncio
    import time
    from dataclasses import asdict

    from ..harness.probe import ProbeResult, probe

    if args.nice:
        os.nice(args.nice)
    started = time.monotonic()

    def first_frame() -> None:  # a line a script (or a test) can wait for
        print(f"dyadic probe: first frame after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    if args.browser:
        from ..harness.browser import page_timeline

        page_url = args.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).removesuffix("ws")
        timeline = page_timeline(
            page_url, args.seconds, on_first_frame=first_frame, microphone=args.mic, insecure=args.insecure
        )
        print(json.dumps(asyncio.run(timeline)))
        return 0
    host = urllib.parse.urlsplit(args.url).hostname or ""
    loopback = host == "localhost" or host.startswith("127.")  # else: ICE on this host's own addresses

    async def clients() -> list[ProbeResult]:
        sessions = (
            probe(
                args.url,
                seconds=args.seconds,
                loopback=loopback,
                trace=args.trace,
                on_first_frame=first_frame,
                microphone=args.mic,
                insecure=args.insecure,
                render=args.render,
            )
            for _ in range(args.sessions)
        )
        return list(await asyncio.gather(*sessions))

    results = asyncio.run(clients())
    for k, r in enumerate(results, 1):  # for a person; the JSON below is for scripts
        drawn = r.answer.get("render") or "-"
        rate = f"{r.poses_per_second():.1f} poses/s" if drawn == "client" else f"{r.fps():.1f} FPS"
        note = f" ({r.answer['render_note']})" if r.answer.get("render_note") else ""
        print(
            f"dyadic probe: session {k}: drawn by the {'browser' if drawn == 'client' else 'server'}{note}, "
            f"{rate}, audio {r.audio_seconds():.1f} s, {len(r.errors)} error(s)",
            file=sys.stderr,
        )
    print(json.dumps([asdict(r) for r in results]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dyadic", description="A real-time dyadic avatar engine.")
    p.add_argument("--version", action="version", version=f"dyadic {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="render an interaction (speaker and listener side by side) to MP4")
    r.add_argument("clip", nargs="?", help="interaction id (V00_S0809_I00000582) or file id; default: the first")
    r.add_argument("--data", metavar="DIR", help="dataset folder (Seamless or REACT); default: the embedded sample")
    r.add_argument(
        "--out",
        metavar="FILE.mp4|FOLDER",
        help="output file (default: out/replay.mp4); with --all a folder (default: out/replay)",
    )
    r.add_argument(
        "--all",
        action="store_true",
        help="render every interaction of --data as Ray tasks into FOLDER/<id>.mp4; MP4s already there are skipped",
    )
    _add_ray_options(r, "clips (with --all)")
    r.add_argument("--seconds", type=positive_float, metavar="S", help="render only the first S seconds")
    r.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH", help="video size (default: 640x480)")
    r.add_argument(
        "--body-model", metavar="DIR", help="a real SMPL-H or SMPL-X model folder; default: the embedded avatar"
    )
    r.add_argument(
        "--gl",
        choices=("auto", "egl", "osmesa"),
        default="auto",
        help="headless GL platform (default: auto, EGL first)",
    )
    r.add_argument("--msaa", action="store_true", help="4x anti-aliasing (about 2x render cost on CPU)")
    r.add_argument(
        "--audio",
        choices=("speaker", "listener", "both"),
        default="speaker",
        help="whose audio goes into the MP4 (default: %(default)s)",
    )
    r.add_argument(
        "--model",
        metavar="FILE|none",
        help="reaction model (.onnx or .pt) that plays the listener; default: the shipped weights "
        "for the data's format; 'none': show the recorded listener",
    )
    r.add_argument("--seed", type=int, default=0, help="the model listener's latent seed (default: 0)")
    r.add_argument(
        "--ghost",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also draw the recorded listener, translucent blue, over the model's (default: off)",
    )
    r.add_argument("--no-captions", action="store_true", help="leave out the captions naming each person")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_replay)

    d = sub.add_parser("data", help="inspect or generate dataset files")
    dsub = d.add_subparsers(dest="data_command", required=True)
    ls = dsub.add_parser("ls", help="list the interactions found in a folder")
    ls.add_argument("dir", metavar="DIR", nargs="?", help="a dataset folder (default: the embedded sample)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_data_ls)
    ix = dsub.add_parser(
        "index",
        help="build or refresh a folder's catalog index (every command does on first use; this shows progress)",
    )
    ix.add_argument("dir", metavar="DIR", nargs="?", help="a dataset folder (default: the embedded sample)")
    ix.add_argument(
        "--workers", type=positive_int, metavar="N", help="processes reading files in parallel (default: one per core)"
    )
    ix.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ix.set_defaults(func=cmd_data_index)
    sm = dsub.add_parser("sample", help="write sample data in the exact format of a real dataset")
    sm.add_argument("out_dir", metavar="OUT_DIR", help="where the files go (made if missing)")
    sm.add_argument(
        "--format", choices=("seamless", "react"), default="seamless", help="which layout (default: %(default)s)"
    )
    sm.add_argument("--interactions", type=positive_int, default=4, metavar="N", help="how many (default: 4)")
    sm.add_argument(
        "--seconds", type=positive_float, default=20.0, metavar="S", help="length of each, at least 3 (default: 20)"
    )
    sm.add_argument("--seed", type=int, default=0, metavar="K", help="random seed: the same K, the same files")
    sm.set_defaults(func=cmd_data_sample)

    t = sub.add_parser("train", help="train the online reaction model on dataset files")
    t.add_argument(
        "--data",
        metavar="DIR",
        help="a dataset folder (decoded into memory: small data) or a shard folder written by `dyadic prepare` "
        "(streamed); default: the embedded sample",
    )
    t.add_argument("--format", choices=("seamless", "react"), help="which format to use (default: the first found)")
    t.add_argument("--out", default="runs/default", metavar="DIR", help="checkpoints go here (default: %(default)s)")
    t.add_argument("--epochs", type=positive_int, default=40, metavar="N", help="passes over the data (default: 40)")
    t.add_argument("--batch", type=positive_int, default=32, metavar="N", help="windows per batch (default: 32)")
    t.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate (default: 2e-3)")
    t.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train (auto: CUDA if any)"
    )
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--seed", type=int, default=0, help="random seed of the initial weights and batches (default: 0)")
    t.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="held-out share of the interactions, by sorted id (default: 0.2)",
    )
    t.add_argument(
        "--ccc-weight",
        type=non_negative_float,
        default=0.0,
        metavar="W",
        help="weight of a per-window concordance (CCC) term next to squared error, against "
        "flat, under-dispersed reactions (default: %(default)s, squared error alone; "
        "the shipped REACT model used 0.5)",
    )
    t.add_argument(
        "--past-noise",
        type=non_negative_float,
        default=DEFAULT_PAST_NOISE,
        metavar="S",
        help="std of the noise on the listener's own past frames fed back during training, in units of "
        "the listener's std (default: %(default)s): high, so that the model reacts to the speaker "
        "rather than copying its past, as it must when it runs on its own outputs",
    )
    t.add_argument(
        "--buffer-chunks",
        type=positive_int,
        default=64,
        metavar="N",
        help="training from shards: chunks held in the shuffle buffer (default: %(default)s; memory does not "
        "grow with the data)",
    )
    t.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="data-parallel workers through Ray Train (shards only; CPUs here, one GPU each where Ray has GPUs)",
    )
    t.add_argument("--ray", metavar="HOST:PORT", help="run the workers on this Ray cluster; default: a local Ray")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    pp = sub.add_parser("prepare", help="write a data folder's training inputs and targets as shards (Ray tasks)")
    pp.add_argument("data", metavar="DIR", nargs="?", help="dataset folder; default: the embedded sample")
    pp.add_argument("--out", required=True, metavar="SHARDS", help="the shard folder (made; a second run resumes)")
    pp.add_argument("--format", choices=("seamless", "react"), help="which format to use (default: the first found)")
    pp.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="held-out share of the interactions, by sorted id (default: 0.2)",
    )
    pp.add_argument(
        "--chunk-frames", type=positive_int, default=600, metavar="N", help="frames per sample (default: %(default)s)"
    )
    pp.add_argument(
        "--shard-frames",
        type=positive_int,
        default=60_000,
        metavar="N",
        help="frames per shard, at least (default: %(default)s, about 33 minutes at 30 fps)",
    )
    _add_ray_options(pp, "shards")
    pp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pp.set_defaults(func=cmd_prepare)

    e = sub.add_parser("export", help="write a checkpoint's step function as an ONNX graph")
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt file written by `dyadic train`")
    e.add_argument("--out", default="model.onnx", metavar="FILE.onnx", help="(default: %(default)s)")
    e.set_defaults(func=cmd_export)

    ev = sub.add_parser("eval", help="REACT metrics of a model and the reference rows on held-out data")
    ev.add_argument("--data", metavar="DIR", help="held-out interactions; default: the embedded sample")
    ev.add_argument("--format", choices=("seamless", "react"), help="with no --model: whose default model")
    ev.add_argument(
        "--model", metavar="FILE", help=".onnx (ONNX Runtime) or .pt checkpoint (torch); default: the shipped weights"
    )
    ev.add_argument("--samples", type=positive_int, default=10, metavar="K", help="reactions per speaker (default: 10)")
    ev.add_argument(
        "--out", default="report", metavar="DIR", help="metrics.json and metrics.md go here (default: %(default)s)"
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the sampled reactions (default: 0)")
    ev.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (auto: CUDA if any)"
    )
    _add_ray_options(ev, "generation (one task per interaction)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_eval)

    sv = sub.add_parser("serve", help="serve the live engine and its browser page (WebRTC)")
    sv.add_argument("--data", metavar="DIR", help="recorded interactions to offer; default: the embedded sample")
    sv.add_argument(
        "--model",
        metavar="FILE|none",
        help="reaction model (.onnx/.pt) for its dataset; default: the shipped weights of each "
        "dataset found; 'none': recorded listeners only",
    )
    sv.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    sv.add_argument("--port", type=port, default=8080, help="HTTP + websocket port (default: %(default)s; 0: any free)")
    sv.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH", help="video size (default: 640x480)")
    sv.add_argument(
        "--max-sessions",
        type=positive_int,
        default=4,
        metavar="N",
        help="sessions at once; more are refused (default: %(default)s)",
    )
    sv.add_argument(
        "--ice-loopback",
        action="store_true",
        help="WebRTC on 127.0.0.1 only (local demos and tests; the browser needs --allow-loopback-in-peer-connection)",
    )
    sv.add_argument("--ssl-certfile", metavar="FILE", help="serve https with this PEM certificate (and --ssl-keyfile)")
    sv.add_argument("--ssl-keyfile", metavar="FILE", help="the certificate's PEM private key, unencrypted")
    sv.add_argument(
        "--ssl-self-signed",
        action="store_true",
        help="serve https with a certificate made for this server's names (cached; its SHA-256 fingerprint "
        "is printed for visitors to check): what a browser on another machine needs for its microphone",
    )
    sv.add_argument("--stun", action="append", metavar="URL", help="a STUN server (stun:host:port); none by default")
    sv.add_argument(
        "--turn",
        action="append",
        metavar="URL",
        help="a TURN server (turn:user:pass@host:port), for the server and its pages; never logged",
    )
    sv.add_argument(
        "--ice-relay",
        action="store_true",
        help="connect only through the --turn relays, here and in the pages (to check a TURN setup)",
    )
    sv.add_argument(
        "--public-host",
        action="append",
        metavar="NAME",
        help="a host name or address the server is reached by, besides its --host and localhost (repeatable); "
        "requests naming any other Host are refused",
    )
    sv.add_argument(
        "--allow-origin",
        action="append",
        metavar="URL",
        help="another site whose pages may connect, e.g. https://demo.example.org (repeatable); by default only "
        "the server's own pages may",
    )
    sv.add_argument(
        "--render",
        choices=("any", "server-only"),
        default="any",
        help="who may draw the avatars: 'any' (the default: the server, or the browser for a page opened with "
        "?render=client, which then gets poses on a data channel instead of video) or 'server-only' (such pages "
        "get the server's video, and are told why)",
    )
    sv.add_argument(
        "--offer-timeout",
        type=positive_float,
        default=15.0,
        metavar="S",
        help="close a websocket that has not sent its WebRTC offer within S seconds (default: %(default)s); "
        "no render worker starts before an offer",
    )
    sv.add_argument(
        "--video-codec",
        choices=("h264", "vp8"),
        default="h264",
        help="codec to prefer (default: %(default)s, libx264 ultrafast; the other one when the "
        "browser does not offer it)",
    )
    sv.add_argument(
        "--body-model", metavar="DIR", help="a real SMPL-H or SMPL-X model folder; default: the embedded avatar"
    )
    sv.add_argument("--gl", choices=("auto", "egl", "osmesa"), default="auto", help="headless GL platform")
    sv.add_argument(
        "--decimate",
        type=parse_decimate,
        default="auto",
        metavar="F|auto",
        help="fraction of each body's triangles left out of the live render, the head always whole "
        "(default: auto, 0.5 when GL renders on the CPU, 0 on a GPU)",
    )
    sv.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    sv.add_argument("-v", "--verbose", action="store_true", help="log sessions and requests")
    sv.set_defaults(func=cmd_serve)

    pr = sub.add_parser(
        "probe",
        help="connect headless aiortc clients to a running `dyadic serve` and print what they received as JSON",
    )
    pr.add_argument("url", help="the server's websocket, ws://HOST:PORT/ws")
    pr.add_argument("--sessions", type=positive_int, default=1, help="clients at once (default: 1)")
    pr.add_argument(
        "--seconds", type=positive_float, default=10.0, help="receive time after the first frame (default: 10)"
    )
    pr.add_argument("--trace", action="store_true", help="ask for the server's per-frame traces too (for latency)")
    pr.add_argument(
        "--mic", action="store_true", help="be the browser microphone (a tone; Chromium's fake device with --browser)"
    )
    pr.add_argument(
        "--render",
        choices=("server", "client"),
        default="server",
        help="server: receive the server's video (default); client: ask for browser mode and receive the poses "
        "on the data channel instead, as a page with ?render=client does",
    )
    pr.add_argument(
        "--insecure", action="store_true", help="on https/wss, accept any certificate (a self-signed test server's)"
    )
    pr.add_argument(
        "--browser",
        action="store_true",
        help="open the page in headless Chromium instead (one session); print its stats every 0.5 s",
    )
    pr.add_argument(
        "--nice",
        type=int,
        choices=range(20),
        default=0,
        metavar="0..19",
        help="lower the clients' CPU priority by K, to take only what a server on this machine leaves (default: 0)",
    )
    pr.set_defaults(func=cmd_probe)

    pf = sub.add_parser(
        "profile",
        help="run the engine against real loopback clients and report where every millisecond of a frame goes",
    )
    pf.add_argument("clip", nargs="?", help="interaction id (default: the first)")
    pf.add_argument("--data", metavar="DIR", help="dataset folder; default: the embedded sample")
    pf.add_argument(
        "--seconds", type=positive_float, default=60.0, help="the profiled window, after 2 s of warm-up (default: 60)"
    )
    pf.add_argument("--sessions", type=positive_int, default=1, help="concurrent sessions (default: 1)")
    pf.add_argument(
        "--render",
        choices=("server", "client"),
        default="server",
        help="server: profile the server's video (default); client: browser mode, the poses on a data channel "
        "drawn by the page (Chromium: to the animation frame that drew each; aiortc: to its arrival)",
    )
    pf.add_argument(
        "--client",
        choices=("chromium", "aiortc"),
        default="chromium",
        help="the receiving client (default: chromium, the engine's page in headless Chromium: "
        "glass to glass, A/V offset; aiortc: no display, to the decoded frame)",
    )
    pf.add_argument(
        "--mic",
        action="store_true",
        help="listen to the client's microphone instead of a recording (Chromium's fake capture "
        "device, a beep; aiortc: a tone): the live path's latency",
    )
    pf.add_argument(
        "--no-frame-id",
        action="store_true",
        help="chromium: do not draw frame ids into the picture to cross-check the RTP mapping",
    )
    pf.add_argument(
        "--out",
        default="report",
        metavar="DIR",
        help="where trace.jsonl, summary.json and report.html go (default: report/)",
    )
    pf.set_defaults(func=cmd_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    from dyadic.datasets.errors import DatasetError

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (UserError, DatasetError, FileNotFoundError, ValueError) as exc:
        if os.environ.get("DYADIC_DEBUG"):
            raise
        print(f"dyadic: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dyadic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
