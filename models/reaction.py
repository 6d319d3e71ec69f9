"""The online reaction model: one recurrent step per video frame, strictly causal, stochastic.

    step(audio_k, speaker_k, speaker_valid_k, listener_{k-1}, z, h_{k-1}) -> (listener_k, h_k)

- audio_k: the speaker's causal log-mel frame k (features.py);
- speaker_k: the speaker's reaction channels at frame k (ChannelLayout, model units), multiplied by
  their group validity, which is an input too: a missing or invalid group is masked, not guessed;
- listener_{k-1}: the listener's own previous frame (the model's own output when it runs live);
- z: the latent of the session (sampled from N(0, I); runtime.LatentSchedule re-samples it with a
  smooth crossfade), so K seeds give K different reactions to the same speaker;
- h: the GRU state, an explicit input and output of the exported ONNX step.

Inputs and outputs are in model units (ChannelLayout.encode); the per-channel normalisation is part
of the module (and of the ONNX graph). Training runs the same layers over whole windows at once
(`forward_sequence`, teacher forcing on a noised listener past); `run` loops `step` and is what the
ONNX step loop is tested against. Training-only: a posterior encoder q(z | listener window) and the
KL term that ties it to the N(0, I) prior (a conditional VAE).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ReactionConfig


def _buffer(values, size: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((size,), float(default))
    return torch.as_tensor(values, dtype=torch.float32).reshape(size)


class ReactionModel(nn.Module):
    # buffers, registered in __init__
    audio_mean: torch.Tensor
    audio_std: torch.Tensor
    speaker_mean: torch.Tensor
    speaker_std: torch.Tensor
    listener_mean: torch.Tensor
    listener_std: torch.Tensor
    group_matrix: torch.Tensor

    def __init__(self, config: ReactionConfig):
        super().__init__()
        self.config = config
        layout = config.channel_layout
        c, a, h, z = layout.size, config.audio_dim, config.hidden, config.latent
        g = len(layout.names)
        st = config.stats
        for name, size in (("audio", a), ("speaker", c), ("listener", c)):
            self.register_buffer(f"{name}_mean", _buffer(st.get(f"{name}_mean"), size, 0.0))
            self.register_buffer(f"{name}_std", _buffer(st.get(f"{name}_std"), size, 1.0))
        self.register_buffer("group_matrix", torch.from_numpy(layout.group_matrix()))
        self.input = nn.Sequential(nn.Linear(a + c + g + c + z, h), nn.GELU())
        self.rnn = nn.GRU(h, h, num_layers=config.layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(h + z, h), nn.GELU(), nn.Linear(h, c))
        # training only: q(z | listener window), bidirectional, never exported
        self.posterior = nn.GRU(c, 64, batch_first=True, bidirectional=True)
        self.posterior_out = nn.Linear(128, 2 * z)

    # -- the step and its sequence form ---------------------------------------------------------
    def _features(self, audio, speaker, speaker_valid, previous, latent):
        a = (audio - self.audio_mean) / self.audio_std
        mask = speaker_valid @ self.group_matrix
        s = (speaker - self.speaker_mean) / self.speaker_std * mask
        p = (previous - self.listener_mean) / self.listener_std
        return self.input(torch.cat([a, s, speaker_valid, p, latent], dim=-1))

    def _listener(self, y, latent):
        return self.head(torch.cat([y, latent], dim=-1)) * self.listener_std + self.listener_mean

    def step(self, audio, speaker, speaker_valid, previous, latent, hidden):
        """One frame for a batch of sessions: (B, .) inputs, hidden (layers, B, H)."""
        x = self._features(audio, speaker, speaker_valid, previous, latent)
        y, hidden = self.rnn(x[:, None], hidden)
        return self._listener(y[:, 0], latent), hidden

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(self.config.layers, batch, self.config.hidden)

    def forward_sequence(self, audio, speaker, speaker_valid, previous, latent):
        """Teacher-forced (B, T, .) -> (B, T, C): the same layers as step(), over a window at once."""
        z = latent[:, None].expand(-1, audio.shape[1], -1)
        x = self._features(audio, speaker, speaker_valid, previous, z)
        y, _ = self.rnn(x, self.initial_hidden(audio.shape[0]).to(x))
        return self._listener(y, z)

    @torch.no_grad()
    def run(self, audio, speaker, speaker_valid, latent, first_previous=None):
        """Free-running (B, T, .) -> (B, T, C): step() frame by frame, feeding back its output."""
        b, t = audio.shape[:2]
        prev = self.listener_mean.expand(b, -1) if first_previous is None else first_previous
        hidden = self.initial_hidden(b).to(audio)
        out = []
        for k in range(t):
            prev, hidden = self.step(
                audio[:, k],
                speaker[:, k],
                speaker_valid[:, k],
                prev,
                latent if latent.dim() == 2 else latent[:, k],
                hidden,
            )
            out.append(prev)
        return torch.stack(out, dim=1)

    # -- training-only latent posterior ---------------------------------------------------------
    def encode_latent(self, listener):
        """(B, T, C) listener window -> (mu, logvar) of q(z | window)."""
        x = (listener - self.listener_mean) / self.listener_std
        _, h = self.posterior(x)
        stats = self.posterior_out(torch.cat([h[0], h[1]], dim=-1))
        mu, logvar = stats.chunk(2, dim=-1)
        return mu, logvar.clamp(-8, 8)

    def step_parameters(self) -> int:
        """Parameters the exported step uses (the posterior is left out)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("posterior"))
