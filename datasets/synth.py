"""Synthetic dyadic behaviour for the sample data: who talks when, what it sounds like, and how
both people move, as plain per-frame signals that `sample.py` writes in each dataset's format.

The structure is the one a listener model should learn: turn-taking with a primary speaker; the
listener backchannels ("mm-hm") and nods in the speaker's pauses, mirrors the speaker's smiles
300-600 ms later, and looks at the speaker; the speaker's jaw and beat gestures follow their own
speech envelope. Everything is drawn from one numpy Generator, so a seed fixes the whole sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal

CONSONANTS = "bdfgklmnprstvz"
FRICATIVES = set("fsvz")
VOWEL_FORMANTS = {  # Hz: F1, F2, F3 of an adult male voice (Peterson & Barney averages)
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}
NASAL_FORMANTS = (250, 1100, 2300)  # the "m" murmur of a backchannel


@dataclass
class Word:
    text: str
    start: float
    end: float
    syllables: list[tuple[str, float, float]]  # (syllable, start, end)


@dataclass
class Utterance:
    person: int
    start: float
    end: float
    words: list[Word]
    backchannel: bool = False

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass
class Voice:
    f0: float  # Hz
    formant_scale: float  # > 1 for shorter vocal tracts


@dataclass
class DyadPlan:
    seconds: float
    utterances: list[Utterance]
    nods: list[tuple[int, float]] = field(default_factory=list)  # (person, onset s)
    smiles: list[tuple[int, float, float, float]] = field(default_factory=list)  # (person, t, dur, amp)

    def of(self, person: int) -> list[Utterance]:
        return [u for u in self.utterances if u.person == person]

    def speaking(self, person: int, times: np.ndarray) -> np.ndarray:
        talking = np.zeros(len(times), bool)
        for u in self.of(person):
            talking |= (times >= u.start) & (times < u.end)
        return talking


# --- who talks when ----------------------------------------------------------------------------


def _make_word(rng: np.random.Generator, start: float) -> Word:
    count = int(rng.integers(1, 4))
    syllables, t = [], start
    for _ in range(count):
        syl = rng.choice(list(CONSONANTS)) + rng.choice(list(VOWEL_FORMANTS))
        dur = float(rng.uniform(0.13, 0.24))
        syllables.append((syl, t, t + dur))
        t += dur
    return Word("".join(s for s, _, _ in syllables), start, t, syllables)


def _make_utterance(rng, person: int, start: float, max_end: float) -> Utterance | None:
    words, t = [], start
    target = start + rng.uniform(0.6, 1.8)
    while t < min(target, max_end - 0.3):
        word = _make_word(rng, t)
        if word.end > max_end:
            break
        words.append(word)
        t = word.end + rng.uniform(0.02, 0.09)
    return Utterance(person, start, words[-1].end, words) if words else None


def _backchannel(person: int, start: float) -> Utterance:
    mm, hm = ("mm", start, start + 0.16), ("hm", start + 0.22, start + 0.42)
    return Utterance(person, start, start + 0.42, [Word("mm-hm", start, start + 0.42, [mm, hm])], True)


def plan_dyad(
    rng: np.random.Generator, seconds: float, primary: int = 0, primary_floor=(3.0, 6.5), secondary_floor=(1.2, 3.2)
) -> DyadPlan:
    """Alternating floors (the primary holds longer ones) made of inter-pausal units; the other
    person backchannels and nods in the floor holder's pauses."""
    plan = DyadPlan(seconds, [])
    t, holder = 0.6, primary
    while t < seconds - 1.0:
        floor_len = rng.uniform(*(primary_floor if holder == primary else secondary_floor))
        floor_end = min(t + floor_len, seconds - 0.4)
        other = 1 - holder
        while t < floor_end - 0.6:
            utt = _make_utterance(rng, holder, t, floor_end)
            if utt is None:
                break
            plan.utterances.append(utt)
            if rng.random() < 0.08:  # a nod of emphasis while talking
                plan.nods.append((holder, rng.uniform(utt.start, utt.end)))
            if rng.random() < 0.05:  # the listener sometimes nods over speech too
                plan.nods.append((other, rng.uniform(utt.start, utt.end)))
            pause = rng.uniform(0.45, 1.0)
            if utt.end + pause < floor_end:  # an intra-floor pause: the listener reacts in it
                if rng.random() < 0.7:
                    plan.utterances.append(_backchannel(other, utt.end + rng.uniform(0.05, 0.12)))
                if rng.random() < 0.85:
                    plan.nods.append((other, utt.end + rng.uniform(0.0, 0.2)))
            t = utt.end + pause
        holder = other
        t = max(t, floor_end) + rng.uniform(-0.1, 0.5)
    for person in (0, 1):  # own smiles; the partner's mirrored ones are added in person_motion
        for _ in range(int(rng.integers(2, 5))):
            plan.smiles.append((person, rng.uniform(1, seconds - 2), rng.uniform(1.0, 2.8), rng.uniform(0.4, 1.0)))
    plan.utterances.sort(key=lambda u: u.start)
    return plan


# --- what it sounds like -----------------------------------------------------------------------


def _resonator(freq: float, bandwidth: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bandwidth / rate)
    return np.array([1 - r]), np.array([1.0, -2 * r * np.cos(2 * np.pi * freq / rate), r * r])


def _glottal_source(rng, n: int, rate: int, voice: Voice) -> np.ndarray:
    """Pulse train at a wandering f0, low-passed (glottal tilt) and differentiated (lip radiation)."""
    t = np.arange(n) / rate
    knots = np.arange(0, n / rate + 0.02, 0.01)  # f0 jitter drawn at 100 Hz, interpolated
    slow = np.interp(t, knots, 0.02 * rng.standard_normal(len(knots)))
    f0 = voice.f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.35 * t + rng.uniform(0, 6)) + slow)
    phase = np.cumsum(f0 / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    tilt = signal.lfilter([1.0], [1.0, -1.9, 0.9025], pulses)
    return np.diff(tilt, prepend=0.0) + 0.02 * rng.standard_normal(n, dtype=np.float32)


def speech_audio(
    rng: np.random.Generator, utterances: list[Utterance], seconds: float | Fraction, rate: int, voice: Voice
) -> np.ndarray:
    """One person's voice alone: each syllable a vowel through three formant resonators under a
    raised-cosine envelope, with fricative noise on s/f/v/z onsets."""
    n = int(round(seconds * rate))
    source = _glottal_source(rng, n, rate, voice)
    noise_sos = signal.butter(4, 3000, "highpass", fs=rate, output="sos")
    out = np.zeros(n)
    for utt in utterances:
        for word in utt.words:
            for syl, s0, s1 in word.syllables:
                i0, i1 = int(s0 * rate), min(n, int(s1 * rate))
                if i1 - i0 < 16:
                    continue
                env = np.sin(np.linspace(0, np.pi, i1 - i0)) ** 1.5
                formants = NASAL_FORMANTS if utt.backchannel else VOWEL_FORMANTS[syl[-1]]
                voiced = source[i0:i1] * env
                for k, f in enumerate(formants):
                    b, a = _resonator(f * voice.formant_scale, 60 + 40 * k, rate)
                    voiced = signal.lfilter(b, a, voiced)
                gain = 0.35 if utt.backchannel else 1.0
                out[i0:i1] += gain * voiced * rng.uniform(0.7, 1.0)
                if syl[0] in FRICATIVES:
                    j1 = min(i1, i0 + int(0.07 * rate))
                    hiss = signal.sosfilt(noise_sos, rng.standard_normal(j1 - i0))
                    out[i0:j1] += 0.02 * hiss * np.hanning(j1 - i0)
    peak = np.abs(out).max()
    return out / peak if peak > 0 else out


def mix_microphones(rng, voices: list[np.ndarray], rate: int, bleed: float = 0.04) -> list[np.ndarray]:
    """Each lapel mic: own voice + the partner's residual bleed (delayed 3 ms) + a noise floor,
    then peak-normalised as the dataset's audio is."""
    delay = int(0.003 * rate)
    mics = []
    for own, other in ((voices[0], voices[1]), (voices[1], voices[0])):
        leaked = np.concatenate([np.zeros(delay), other[:-delay]])
        mic = own + bleed * leaked + 0.002 * rng.standard_normal(len(own), dtype=np.float32)
        mics.append((0.7 * mic / np.abs(mic).max()).astype(np.float32))
    return mics


def frame_envelope(audio: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Per-frame RMS of a voice, scaled to [0, 1]: what the jaw and the gestures follow."""
    bounds = np.round(np.arange(n_frames + 1) * rate / fps).astype(int)
    bounds = np.clip(bounds, 0, len(audio))
    energy = np.add.reduceat(audio.astype(np.float64) ** 2, bounds[:-1]) if len(audio) else np.zeros(n_frames)
    counts = np.maximum(np.diff(bounds), 1)
    rms = np.sqrt(energy[:n_frames] / counts)
    rms[np.diff(bounds) == 0] = 0
    return np.clip(rms / (np.percentile(rms, 98) + 1e-9), 0, 1)


# --- how they move -----------------------------------------------------------------------------


@dataclass
class Motion:
    """Per-frame behaviour of one person, in interpretable units (radians, [0, 1] intensities)."""

    envelope: np.ndarray  # own speech, [0, 1]
    speaking: np.ndarray  # bool
    jaw: np.ndarray
    smile: np.ndarray
    blink: np.ndarray
    brow_raise: np.ndarray
    brow_frown: np.ndarray
    head: np.ndarray  # (N, 3) pitch (nod, + is down), yaw, roll
    gaze: np.ndarray  # (N, 2) yaw, pitch
    gesture: np.ndarray  # arm raise [0, 1]
    posture: np.ndarray  # (N, 3) lean, torso yaw, lateral shift
    breathing: np.ndarray


def _smooth(x: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    width = max(1, int(round(seconds * fps)))
    kernel = np.hanning(width + 2)[1:-1]
    return np.convolve(x, kernel / kernel.sum(), mode="same")


def _steps(rng, n: int, fps: float, every: tuple[float, float], values, ramp_s: float) -> np.ndarray:
    """Piecewise-constant targets drawn by `values(rng)`, changing every few seconds, smoothed."""
    out = np.zeros((n,) + np.shape(values(rng)))
    k = 0
    while k < n:
        span = int(rng.uniform(*every) * fps)
        out[k : k + span] = values(rng)
        k += span
    return np.stack([_smooth(c, fps, ramp_s) for c in out.reshape(n, -1).T], 1).reshape(out.shape)


def _events(times: np.ndarray, onsets, shape_fn) -> np.ndarray:
    out = np.zeros(len(times))
    for onset in onsets:
        out += shape_fn(times - onset)
    return out


def _smile_bump(t, dur, amp):
    return amp * np.where((t > 0) & (t < dur), np.sin(np.pi * np.clip(t / dur, 0, 1)) ** 2, 0.0)


def person_motion(rng: np.random.Generator, plan: DyadPlan, person: int, envelope: np.ndarray, fps: float) -> Motion:
    n = len(envelope)
    times = np.arange(n) / fps
    speaking = plan.speaking(person, times)
    partner_speaking = plan.speaking(1 - person, times)
    jaw = np.clip(_smooth(envelope, fps, 0.07) * 1.3, 0, 1)

    own = [(t, d, a) for p, t, d, a in plan.smiles if p == person]
    partner = [(t, d, a) for p, t, d, a in plan.smiles if p != person]
    is_primary = sum(u.end - u.start for u in plan.of(person)) >= sum(u.end - u.start for u in plan.of(1 - person))
    smile = sum((_smile_bump(times - t, d, a * (1.0 if is_primary else 0.4)) for t, d, a in own), np.zeros(n))
    lag = rng.uniform(0.3, 0.6)  # the listener mirrors the speaker's smiles 300-600 ms later
    mirror_gain = 0.25 if is_primary else 0.8
    smile += sum((_smile_bump(times - t - lag, d, mirror_gain * a) for t, d, a in partner), np.zeros(n))

    blink_onsets, t = [], rng.uniform(0.5, 2.0)
    while t < plan.seconds:
        blink_onsets.append(t)
        t += rng.uniform(2.0, 5.0)
    blink = _events(times, blink_onsets, lambda x: np.clip(1 - np.abs(x - 0.075) / 0.075, 0, 1))

    starts = [u.start for u in plan.of(person) if not u.backchannel and rng.random() < 0.5]
    brow_raise = _events(times, starts, lambda x: 0.6 * np.exp(-(((x - 0.2) / 0.25) ** 2)))
    brow_raise += 0.3 * _smooth(envelope, fps, 0.4) * speaking
    frowns = rng.uniform(0, plan.seconds, int(rng.integers(1, 3)))
    brow_frown = _events(times, frowns, lambda x: 0.5 * np.exp(-(((x - 0.5) / 0.5) ** 2)))

    nod_onsets = [t for p, t in plan.nods if p == person]
    freq, cycles = rng.uniform(1.8, 2.4), 2.5
    nod = _events(
        times,
        nod_onsets,
        lambda x: np.where((x > 0) & (x < cycles / freq), 0.2 * np.sin(2 * np.pi * freq * x) * np.exp(-x * 1.2), 0.0),
    )
    nod = np.abs(nod) * 0.6 + nod * 0.4  # downward-biased nod
    gaze_away = lambda r: np.array([r.uniform(-0.5, 0.5), r.uniform(-0.3, 0.1)]) if r.random() < 0.35 else np.zeros(2)
    gaze = _steps(rng, n, fps, (0.8, 3.0), gaze_away, 0.06)
    gaze[partner_speaking & ~speaking] *= 0.3  # a listener looks at the speaker
    head = np.zeros((n, 3))
    head[:, 0] = nod + 0.05 * _smooth(envelope, fps, 0.3) * speaking
    head[:, 1] = 0.35 * _smooth(gaze[:, 0], fps, 0.3)
    head[:, 2] = 0.04 * np.sin(2 * np.pi * 0.11 * times + rng.uniform(0, 6))

    gesture = np.clip(_smooth(envelope * speaking, fps, 0.5) * 1.6, 0, 1)
    posture = _steps(
        rng,
        n,
        fps,
        (5.0, 12.0),
        lambda r: np.array([r.uniform(0.0, 0.2), r.uniform(-0.2, 0.2), r.uniform(-0.1, 0.1)]),
        0.8,
    )
    breathing = np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * times + rng.uniform(0, 6))
    return Motion(
        envelope,
        speaking,
        jaw,
        np.clip(smile, 0, 1),
        blink,
        np.clip(brow_raise, 0, 1),
        brow_frown,
        head,
        gaze,
        gesture,
        posture,
        breathing,
    )
