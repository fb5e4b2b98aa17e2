package dev.trilens;

/**
 * The challenge's model and dataset written in plain PyTorch (no TransformerLens), as the opening of the Python
 * scripts that tests run through {@link TorchPython}: a reference that shares no code with trilens. The scripts
 * that start with {@link #PRELUDE} get {@code OneLayer(V, T, D, H, DH, M)}, a one-layer model with TransformerLens's
 * parameter names, shapes and named_parameters order (embed + pos embed, attention scaled by 1/sqrt(d_head) with a
 * causal mask, a ReLU MLP, unembed, no LayerNorm), {@code load(path)} (the model of a one-layer TransformerLens state dict
 * saved by torch.save), {@code dataset(V, T, trigram_prob, seed, size)} (the challenge's BigramDataset, returning the trigrams
 * and the rows) and {@code next_token_loss(logits, tok)}, the mean cross-entropy of positions 0..T-2.
 */
public final class TorchReference {
    private TorchReference() {
    }

    public static final String PRELUDE = """
            import json, math, sys, torch
            from torch import nn
            torch.set_num_threads(1)

            class OneLayer(nn.Module):
                # declared in TransformerLens's named_parameters order, which its init draws in
                def __init__(self, V, T, D, H, DH, M):
                    super().__init__()
                    P = lambda *s: nn.Parameter(torch.zeros(*s))
                    self.DH = DH
                    self.W_E, self.W_pos = P(V, D), P(T, D)
                    self.W_Q, self.W_O, self.b_Q, self.b_O = P(H, D, DH), P(H, DH, D), P(H, DH), P(D)
                    self.W_K, self.W_V, self.b_K, self.b_V = P(H, D, DH), P(H, D, DH), P(H, DH), P(H, DH)
                    self.W_in, self.b_in, self.W_out, self.b_out = P(D, M), P(M), P(M, D), P(D)
                    self.W_U, self.b_U = P(D, V), P(V)

                def forward(self, tok):
                    n = tok.shape[1]
                    x = self.W_E[tok] + self.W_pos[:n]
                    q = torch.einsum("bpd,hde->bphe", x, self.W_Q) + self.b_Q
                    k = torch.einsum("bpd,hde->bphe", x, self.W_K) + self.b_K
                    v = torch.einsum("bpd,hde->bphe", x, self.W_V) + self.b_V
                    s = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.DH)
                    causal = torch.ones(n, n, dtype=torch.bool).tril()
                    s = s.masked_fill(~causal, float("-inf"))
                    z = torch.einsum("bhqk,bkhe->bqhe", s.softmax(-1), v)
                    x = x + torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O
                    x = x + torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out
                    return x @ self.W_U + self.b_U

            def load(path):
                # the shapes come from the file itself, so nothing of the model is taken from trilens
                state = torch.load(path, map_location="cpu")
                (V, D), T = state["embed.W_E"].shape, state["pos_embed.W_pos"].shape[0]
                H, _, DH = state["blocks.0.attn.W_Q"].shape
                model = OneLayer(V, T, D, H, DH, state["blocks.0.mlp.W_in"].shape[1])
                own = dict(model.named_parameters())
                with torch.no_grad():
                    for key, t in state.items():
                        name = key.rsplit(".", 1)[1]
                        if name in own:
                            own.pop(name).copy_(t)
                if own:
                    raise SystemExit(f"{path} lacks {sorted(own)}")
                return model

            def dataset(V, T, trigram_prob, seed, size):
                # BigramDataset: trigrams three draws at a time, none sharing a prefix, none chaining; then uniform
                # rows, each trigram's c written left to right so a forced c can start the next pair
                torch.manual_seed(seed)
                n = int(trigram_prob * V * (V - 1))
                completion, suffixes, trigrams = {}, set(), []
                while len(trigrams) < n:
                    a, b, c = torch.randint(0, V, (3,)).tolist()
                    if (a, b) in completion or (b, c) in completion or (a, b) in suffixes:
                        continue
                    completion[(a, b)] = c
                    suffixes.add((b, c))
                    trigrams.append((a, b, c))
                rows = torch.randint(0, V, (size, T))
                table = torch.full((V * V,), -1, dtype=torch.long)
                for (a, b), c in completion.items():
                    table[a * V + b] = c
                for i in range(T - 2):
                    c = table[rows[:, i] * V + rows[:, i + 1]]
                    hit = c >= 0
                    rows[hit, i + 2] = c[hit]
                return trigrams, rows

            def next_token_loss(logits, tok):
                V = logits.shape[-1]
                return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1))
            """;
}
