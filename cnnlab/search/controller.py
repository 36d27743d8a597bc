"""ENAS's controller (Sec. 2.2-2.4): an LSTM with 100 hidden units that samples an
architecture one decision at a time, each decision's embedding fed back as the next input.

Operations come from a softmax over the hidden state; inputs and skips from attention over
"anchors" (the hidden states at which earlier layers/blocks were decided), as the released
code does (``general_controller.py``, ``micro_controller.py``): a skip to layer j has
probability sigmoid(vᵀ tanh(W₁ a_j + W₂ h)), an input index is a softmax over the same
scores. Logits are squashed to ``tanh_constant · tanh(·)`` (released: 1.5 macro, 1.1 micro;
operations further divided by 2.5). :class:`Reinforce` trains it with REINFORCE, a moving-
average baseline and an entropy bonus added to the reward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.models.enas import MACRO_OPS, MICRO_OPS


@dataclass
class Sample:
    decisions: list[int]
    log_prob: torch.Tensor   # sum over decisions
    entropy: torch.Tensor    # sum over decisions


class Controller(nn.Module):
    def __init__(self, space, hidden: int = 100, tanh_constant: float | None = None,
                 op_tanh_reduce: float = 2.5):
        super().__init__()
        self.space = space
        self.hidden = hidden
        self.tanh_constant = tanh_constant if tanh_constant is not None else \
            (1.5 if space.kind == "macro" else 1.1)
        self.op_tanh_reduce = op_tanh_reduce
        n_ops = len(MACRO_OPS if space.kind == "macro" else MICRO_OPS)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.g_emb = nn.Parameter(torch.empty(1, hidden).uniform_(-0.1, 0.1))
        self.op_emb = nn.Embedding(n_ops, hidden)
        self.op_head = nn.Linear(hidden, n_ops)
        self.attn_anchor = nn.Linear(hidden, hidden, bias=False)
        self.attn_query = nn.Linear(hidden, hidden, bias=False)
        self.attn_v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            if p is not self.g_emb:
                nn.init.uniform_(p, -0.1, 0.1)

    def _squash(self, logits, op: bool):
        c = self.tanh_constant / (self.op_tanh_reduce if op else 1.0)
        return c * torch.tanh(logits)

    def _attend(self, anchors_w, h):
        return self.attn_v(torch.tanh(anchors_w + self.attn_query(h))).view(-1)

    def sample(self, gen: torch.Generator | None = None,
               decisions: list[int] | None = None) -> Sample:
        """Sample (or, given ``decisions``, score) one architecture."""
        it = iter(decisions) if decisions is not None else None
        out, logps, ents = [], [], []

        def pick(logits, bernoulli=False):
            if bernoulli:
                p = torch.sigmoid(logits)
                if it is None:
                    v = (torch.rand(p.shape, generator=gen) < p.detach()).long()
                else:
                    v = torch.tensor([next(it) for _ in range(len(p))])
                logps.append(-F.binary_cross_entropy_with_logits(logits, v.float(),
                                                                  reduction="sum"))
                ents.append(F.binary_cross_entropy_with_logits(logits, p.detach(),
                                                               reduction="sum"))
                out.extend(v.tolist())
                return v
            logp = F.log_softmax(logits, -1)
            if it is None:
                v = int(torch.multinomial(logp.detach().exp(), 1, generator=gen))
            else:
                v = next(it)
            logps.append(logp[v])
            ents.append(-(logp * logp.exp()).sum())
            out.append(v)
            return v

        h = c = torch.zeros(1, self.hidden)
        if self.space.kind == "macro":
            self._sample_macro(pick, h, c)
        else:
            self._sample_micro(pick, h, c)
        return Sample(out, torch.stack(logps).sum(), torch.stack(ents).sum())

    def _sample_macro(self, pick, h, c):
        x, anchors, anchors_w = self.g_emb, [], []
        for i in range(self.space.num_layers):
            h, c = self.lstm(x, (h, c))
            op = pick(self._squash(self.op_head(h).view(-1), op=True))
            h, c = self.lstm(self.op_emb.weight[op].view(1, -1), (h, c))
            if i:
                logits = self._squash(self._attend(torch.cat(anchors_w), h), op=False)
                skip = pick(logits, bernoulli=True).float()
                x = (skip.view(1, -1) @ torch.cat(anchors)) / (1 + skip.sum())
            else:
                x = self.g_emb
            anchors.append(h)
            anchors_w.append(self.attn_anchor(h))

    def _sample_micro(self, pick, h, c):
        for _cell in range(2):
            x, anchors, anchors_w = self.g_emb, [], []
            for _ in range(2):  # the two input states get anchors from zero input
                h, c = self.lstm(torch.zeros_like(x), (h, c))
                anchors.append(h)
                anchors_w.append(self.attn_anchor(h))
            for _block in range(self.space.num_blocks):
                for _side in range(2):
                    h, c = self.lstm(x, (h, c))
                    logits = self._squash(self._attend(torch.cat(anchors_w), h), op=False)
                    idx = pick(logits)
                    x = anchors[idx]
                for _side in range(2):
                    h, c = self.lstm(x, (h, c))
                    op = pick(self._squash(self.op_head(h).view(-1), op=True))
                    x = self.op_emb.weight[op].view(1, -1)
                anchors.append(h)
                anchors_w.append(self.attn_anchor(h))


class Reinforce:
    """REINFORCE (Williams 1992) as ENAS uses it: reward R = accuracy + ``entropy_weight`` ·
    the sample's entropy; baseline b ← b − (1 − ``baseline_decay``)(b − R); loss =
    −(R − b) · log π(m). Adam (β₁ = 0) at 0.0035, as the released micro search script
(``scripts/cifar10_micro_search.sh``) sets it."""

    def __init__(self, controller: Controller, lr: float = 0.0035,
                 entropy_weight: float = 1e-4, baseline_decay: float = 0.99):
        self.controller = controller
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr, betas=(0.0, 0.999))
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None

    def step(self, sample: Sample, accuracy: float) -> dict:
        reward = accuracy + self.entropy_weight * float(sample.entropy.detach())
        if self.baseline is None:
            self.baseline = reward
        self.baseline -= (1 - self.baseline_decay) * (self.baseline - reward)
        loss = -(reward - self.baseline) * sample.log_prob
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"reward": reward, "baseline": self.baseline}
