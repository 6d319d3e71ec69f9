"""The reaction model: causal features, strict causality, ONNX step == torch, latents, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dyadic.models.data import load_clips
from dyadic.models.features import N_MELS, StreamingLogMel, log_mel_frames
from dyadic.models.layout import ChannelLayout
from dyadic.models.reaction import ReactionModel
from dyadic.models.runtime import LatentSchedule, OnnxRuntime, ReactionSession, TorchRuntime, generate
from dyadic.models.train import TrainOptions, load_checkpoint, prepare, train, window_ccc


@pytest.fixture(scope="module")
def seamless_clips(sample_root):
    dataset, clips, _ = load_clips(sample_root / "seamless")
    assert dataset == "seamless"
    return clips


@pytest.fixture(scope="module")
def small_model(seamless_clips):
    """An untrained but fully configured model (normalisation and rotation references fitted)."""
    torch.manual_seed(0)
    opts = TrainOptions(data="-", hidden=32, latent=4)
    config, encoded = prepare(seamless_clips, 30.0, opts, ChannelLayout.for_spec(_spec()))
    assert np.allclose(encoded[0].speaker, config.channel_layout.encode(seamless_clips[0].speaker))
    return ReactionModel(config).eval()


def _spec():
    from dyadic.datasets.specs import SEAMLESS_SPEC

    return SEAMLESS_SPEC


def _inputs(model, clip, batch=2, frames=60):
    layout = model.config.channel_layout
    spk = layout.encode(clip.speaker[:frames])
    rep = lambda a: torch.from_numpy(np.repeat(np.asarray(a, np.float32)[None], batch, 0))
    latent = torch.from_numpy(np.random.default_rng(1).standard_normal((batch, model.config.latent)).astype(np.float32))
    return rep(clip.audio[:frames]), rep(spk), rep(clip.speaker_valid[:frames]), latent


def test_streaming_features_equal_batch_features(sample_root, seamless_clips):
    from dyadic.datasets import load_interaction

    for clip_id, _fps in (("V00_S0809_I00000582", 30.0), ("V00_S0809_I00000583", 30000 / 1001)):
        it = load_interaction(sample_root / "seamless", clip_id)
        audio = it.speaker.audio()
        batch = log_mel_frames(audio, it.fps, it.n_frames)
        assert batch.shape == (it.n_frames, N_MELS) and np.isfinite(batch).all()
        stream, rng, out, i = StreamingLogMel(it.fps), np.random.default_rng(0), [], 0
        while i < len(audio):  # chunks of any size, like a microphone or a WebRTC track delivers
            n = int(rng.integers(1, 4000))
            out.append(stream.push(audio[i : i + n]))
            i += n
        streamed = np.concatenate(out)[: it.n_frames]
        assert len(streamed) == it.n_frames
        np.testing.assert_array_equal(streamed, batch)


def test_features_are_causal():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(48_000).astype(np.float32)
    changed = audio.copy()
    end_of_frame_9 = round(10 * 48_000 / 30)
    changed[end_of_frame_9:] = 0.0
    a, b = log_mel_frames(audio, 30.0), log_mel_frames(changed, 30.0)
    np.testing.assert_array_equal(a[:10], b[:10])
    assert not np.allclose(a[10], b[10])


def test_model_is_strictly_causal(small_model, seamless_clips):
    """Changing the speaker's audio and movement after frame k leaves outputs 0..k bit-identical."""
    audio, spk, valid, latent = _inputs(small_model, seamless_clips[0])
    ref = small_model.run(audio, spk, valid, latent)
    k = 29
    audio2, spk2, valid2 = audio.clone(), spk.clone(), valid.clone()
    audio2[:, k + 1 :] += torch.randn_like(audio2[:, k + 1 :]) * 3
    spk2[:, k + 1 :] += torch.randn_like(spk2[:, k + 1 :])
    valid2[:, k + 1 :] = 0
    out = small_model.run(audio2, spk2, valid2, latent)
    assert torch.equal(out[:, : k + 1], ref[:, : k + 1])
    assert not torch.allclose(out[:, k + 1 :], ref[:, k + 1 :])
    # the teacher-forced training form is causal too (the same GRU, no look-ahead)
    prev = torch.cat([small_model.listener_mean.expand(2, 1, -1), ref[:, :-1]], dim=1)
    seq = small_model.forward_sequence(audio, spk, valid, prev, latent)
    seq2 = small_model.forward_sequence(audio2, spk2, valid2, prev, latent)
    assert torch.equal(seq[:, : k + 1], seq2[:, : k + 1])


def test_latent_changes_the_reaction(small_model, seamless_clips):
    audio, spk, valid, _ = _inputs(small_model, seamless_clips[0])
    z = torch.randn(2, small_model.config.latent) * 2
    out = small_model.run(audio, spk, valid, z)
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_masked_speaker_movement_is_ignored(small_model, seamless_clips):
    """Values of an invalid group never reach the output: only the mask does."""
    audio, spk, valid, latent = _inputs(small_model, seamless_clips[0])
    valid[:] = 0
    a = small_model.run(audio, spk, valid, latent)
    b = small_model.run(audio, spk + 5.0, valid, latent)
    assert torch.equal(a, b)


def test_onnx_step_loop_matches_torch(small_model, seamless_clips, tmp_path):
    from dyadic.models.export import export_onnx

    path = export_onnx(small_model, tmp_path / "model.onnx")
    meta = json.loads(__import__("onnx").load(str(path)).metadata_props[0].value)
    assert meta["config"]["layout"]["spec"] == "seamless"
    runtime = OnnxRuntime(path, device="cpu")
    assert runtime.provider == "CPUExecutionProvider"
    clip = seamless_clips[0]
    frames = 90
    seeds = [3, 4, 5]
    onnx_out = generate(
        runtime, clip.audio[:frames], clip.speaker[:frames], clip.speaker_valid[:frames], seeds, decode=False
    )
    torch_out = generate(
        TorchRuntime(small_model, "cpu"),
        clip.audio[:frames],
        clip.speaker[:frames],
        clip.speaker_valid[:frames],
        seeds,
        decode=False,
    )
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)
    # ... and the torch full-sequence forward (free running) over the same latents
    layout = small_model.config.channel_layout
    z = torch.from_numpy(
        np.stack([[LatentSchedule(small_model.config.latent, s, 30.0)(f) for f in range(frames)] for s in seeds])
    )
    rep = lambda a: torch.from_numpy(np.repeat(np.asarray(a, np.float32)[None], len(seeds), 0))
    full = small_model.run(
        rep(clip.audio[:frames]), rep(layout.encode(clip.speaker[:frames])), rep(clip.speaker_valid[:frames]), z
    ).numpy()
    np.testing.assert_allclose(onnx_out, full, atol=1e-4)
    # a batched call serves many sessions: row 1 of a batch of 3 == the same session alone
    single = generate(
        runtime, clip.audio[:frames], clip.speaker[:frames], clip.speaker_valid[:frames], [4], decode=False
    )
    np.testing.assert_allclose(onnx_out[1], single[0], atol=1e-5)


def test_session_steps_from_raw_samples(small_model, sample_root):
    """A live session fed audio samples and dataset-unit frames gives dataset-unit listener frames."""
    from dyadic.datasets import load_interaction

    it = load_interaction(sample_root / "seamless", "V00_S0809_I00000582")
    session = ReactionSession(TorchRuntime(small_model, "cpu"), seed=1, fps=it.fps)
    layout = session.layout
    spk, valid = layout.flatten(it.speaker, 30)
    audio = it.speaker.audio()
    frames = []
    for k in range(30):
        s0, s1 = it.audio_span(k, k + 1)
        for feat in session.features.push(audio[s0:s1]):
            frames.append(session.step(feat, spk[k], valid[k]))
    assert len(frames) == 30
    listener = layout.unflatten(np.stack(frames))
    assert listener["smplh:body_pose"].shape == (30, 21, 3)
    # rotations come back in dataset units: near the data's own global orientation
    ref = np.asarray(layout.reference_rotations["smplh:global_orient"])[0]
    from scipy.spatial.transform import Rotation

    angle = (Rotation.from_rotvec(ref).inv() * Rotation.from_rotvec(listener["smplh:global_orient"])).magnitude()
    assert angle.max() < 1.0


def test_latent_schedule_is_smooth_and_deterministic():
    sched = LatentSchedule(8, seed=7, fps=30.0, resample_seconds=2.0, crossfade_seconds=0.5)
    z = np.stack([sched(k) for k in range(300)])
    np.testing.assert_array_equal(z, np.stack([LatentSchedule(8, 7, 30.0, 2.0, 0.5)(k) for k in range(300)]))
    steps = np.linalg.norm(np.diff(z, axis=0), axis=1)
    # a re-draw every 60 frames, faded over 15: no step larger than a quarter-circle sliver
    assert steps.max() < 0.5
    assert np.linalg.norm(z[0] - z[100]) > 1.0  # it did change
    assert not np.array_equal(z[0], LatentSchedule(8, 8, 30.0)(0))


def test_window_ccc_by_hand():
    """The training's concordance term on tiny windows, against values worked out by hand."""
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mask = torch.ones(1, 4, 1)

    def ccc(pred, m=mask, t=target):
        return float(window_ccc(pred.view(1, -1, 1), t.view(1, -1, 1), m))

    assert ccc(target) == pytest.approx(1.0, abs=1e-5)
    assert ccc(-target) == pytest.approx(-2 * 1.25 / (1.25 + 1.25 + 25), abs=1e-5)  # var 1.25, means 2.5 apart x2
    assert ccc(target / 2 + 1.25) == pytest.approx(
        2 * 0.625 / (0.3125 + 1.25), abs=1e-5
    )  # flat: same mean, half the swing
    # masked frames do not count: the last frame's wild value is ignored
    m = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 4, 1)
    assert ccc(torch.tensor([1.0, 2.0, 3.0, 99.0]), m) == pytest.approx(1.0, abs=1e-5)
    # a target constant in its window has no concordance to learn: left out, not a NaN
    flat = torch.full((1, 4, 1), 2.0)
    both = window_ccc(
        torch.cat([target.view(1, 4, 1), flat]), torch.cat([target.view(1, 4, 1), flat]), torch.ones(2, 4, 1)
    )
    assert float(both) == pytest.approx(1.0, abs=1e-5)


def test_validation_rates_the_model_as_it_runs_live(small_model, seamless_clips):
    """best.pt is picked by the live validation loss: the model on its own outputs from the
    window's first real frame, so the real past after that frame cannot change it; the
    teacher-forced loss logged next to it reads that past."""
    from dyadic.models.train import _validation_losses

    audio, speaker, valid, _ = _inputs(small_model, seamless_clips[0], frames=40)
    layout = small_model.config.channel_layout
    target = torch.from_numpy(np.repeat(layout.encode(seamless_clips[0].listener[1:41])[None], 2, 0))
    past = torch.cat([target[:, :1], target[:, :-1]], dim=1)
    mask = torch.ones_like(target)
    other_past = past.clone()
    other_past[:, 1:] += 0.5 * small_model.listener_std
    with torch.no_grad():
        live, forced = _validation_losses(small_model, [audio, speaker, valid, past, target, mask], 0.5)
        live2, forced2 = _validation_losses(small_model, [audio, speaker, valid, other_past, target, mask], 0.5)
    assert np.isfinite([live, forced]).all()
    assert live2 == live and forced2 != forced


def test_train_resume_and_checkpoint(sample_root, tmp_path):
    out = tmp_path / "run"
    opts = TrainOptions(
        data=str(sample_root / "seamless"),
        out=str(out),
        epochs=1,
        batch=4,
        window=32,
        hidden=16,
        latent=4,
        progress=False,
    )
    best = train(opts, log=lambda *_: None)
    assert best.exists() and (out / "last.pt").exists()
    opts.epochs, opts.resume = 2, True
    train(opts, log=lambda *_: None)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite([h["val_loss"], h["val_teacher_forced"]]).all() for h in history)
    model = load_checkpoint(out / "last.pt")
    assert model.config.hidden == 16


def test_train_with_the_concordance_term_and_the_past_noise(sample_root, tmp_path, capsys):
    """`dyadic train --ccc-weight W --past-noise S` reach training: the term is logged per epoch on
    its own, both are recorded with the run's options; negative values are refused."""
    from dyadic.engine.cli.main import build_parser, cmd_train

    args = build_parser().parse_args(
        [
            "train",
            "--data",
            str(sample_root),
            "--format",
            "react",
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch",
            "4",
            "--ccc-weight",
            "0.5",
            "--past-noise",
            "1.5",
            "-q",
        ]
    )
    assert cmd_train(args) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert 0 < history[0]["train_ccc_loss"] < 2  # 1 - CCC, CCC in [-1, 1]
    options = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["options"]
    assert options["ccc_weight"] == 0.5 and options["past_noise"] == 1.5
    assert "1-ccc" in capsys.readouterr().err
    for flag in ("--ccc-weight", "--past-noise"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", flag, "-1"])


def test_bad_model_files_give_clear_errors(tmp_path):
    from dyadic.models.runtime import ModelFileError, load_runtime

    with pytest.raises(ModelFileError, match="no such model file"):
        load_runtime(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(ModelFileError, match=r"junk.onnx"):
        load_runtime(junk)
    bad_pt = tmp_path / "junk.pt"
    torch.save({"hello": 1}, bad_pt)
    with pytest.raises(ModelFileError, match=r"junk.pt"):
        load_runtime(bad_pt)


def test_provider_choice(monkeypatch):
    """CUDA first when ONNX Runtime has it and the driver loads; CPU otherwise; --device cuda
    without CUDA is a clear error, not a silent CPU run."""
    from dyadic.models import runtime

    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime, "cuda_usable", lambda: True)
    assert runtime.OnnxRuntime._providers("auto", both) == both
    assert runtime.OnnxRuntime._providers("cpu", both) == ["CPUExecutionProvider"]
    monkeypatch.setattr(runtime, "cuda_usable", lambda: False)
    assert runtime.OnnxRuntime._providers("auto", both) == ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="no usable CUDA"):
        runtime.OnnxRuntime._providers("cuda", both)
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        runtime.OnnxRuntime._providers("gpu", both)
