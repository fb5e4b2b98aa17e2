package dev.trilens.model;

import dev.trilens.TrilensException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * TransformerLens's HookedTransformer forward pass over a batch of token sequences, with its hook points.
 *
 * <p>Each worker runs one sequence through every layer before the next (its activations stay in cache), keeping only
 * what the cache filter asks for. A hook splits the pass at its hook point: everything before it runs for the whole
 * batch, then the hook sees and may replace the full [batch, ...] activation, as in TransformerLens.
 */
public final class HookedTransformer {

    /** A forward pass's logits [B, T, V] and the activations it was asked to keep. */
    public record Run(Tensor logits, ActivationCache cache) {
    }

    private enum Kind {
        EMBED, POS_EMBED, RESID_PRE, LN_SCALE, LN_NORMALIZED, Q, K, V, SCORES, PATTERN, Z, RESULT, ATTN_OUT,
        RESID_MID, MLP_PRE, MLP_POST, MLP_OUT, RESID_POST, LOGITS
    }

    /** One hook point (or the logits): its name and per-sequence shape for a given T. */
    private record Act(String name, int[] seqShape, int perSeq) {
    }

    /**
     * One step of the pass: what it computes, the act it writes, the acts it reads (-1: none) and the offsets of the
     * parameters it uses in the flat weight array (for Q/K/V, p0 is the layer whose packed weights to use).
     */
    private record Step(Kind kind, int out, int in0, int in1, int p0, int p1) {
    }

    private final Weights weights;
    private final ModelConfig cfg;

    public HookedTransformer(Weights weights) {
        this.weights = weights;
        this.cfg = weights.cfg;
    }

    public ModelConfig config() {
        return cfg;
    }

    public Weights weights() {
        return weights;
    }

    /** Every hook point this model has, in the order the forward pass reaches them. */
    public List<String> hookNames() {
        List<String> names = new ArrayList<>();
        for (Act a : plan(1, true).acts) {
            if (!a.name.equals("logits")) {
                names.add(a.name);
            }
        }
        return names;
    }

    /** tokens is [B, T] flat. */
    public Tensor forward(int[] tokens, int B, int T) {
        return run(tokens, B, T, name -> false, List.of()).logits();
    }

    public Run runWithCache(int[] tokens, int B, int T, Predicate<String> namesFilter) {
        return run(tokens, B, T, namesFilter, List.of());
    }

    public Tensor runWithHooks(int[] tokens, int B, int T, List<Hook.At> hooks) {
        return run(tokens, B, T, name -> false, hooks).logits();
    }

    public Run run(int[] tokens, int B, int T, Predicate<String> cacheFilter, List<Hook.At> hooks) {
        checkTokens(tokens, B, T);
        Map<String, List<Hook>> hooksByName = new HashMap<>();
        for (Hook.At h : hooks) {
            hooksByName.computeIfAbsent(h.name(), n -> new ArrayList<>()).add(h.hook());
        }
        // TransformerLens computes per-head outputs only when asked for (use_attn_result); so do we
        boolean wantResult = false;
        for (int l = 0; l < cfg.nLayers(); l++) {
            String result = HookNames.full("result", l);
            wantResult |= cacheFilter.test(result) || hooksByName.containsKey(result);
        }
        Plan plan = plan(T, wantResult);
        for (String name : hooksByName.keySet()) {
            if (!plan.idByName.containsKey(name) || name.equals("logits")) {
                throw new TrilensException("no hook point named '" + name + "'; this model's hook points are "
                        + hookNames());
            }
        }
        // The steps split into segments, each ending at a hooked activation. Within a segment each worker runs
        // one sequence through every step (activations stay in cache); between segments the hooks see the whole
        // batch. So an activation is kept batch-wide only if it is cached, hooked, or read in a later segment.
        int nSteps = plan.steps.size();
        int[] segmentOfAct = new int[plan.acts.size()];
        List<Integer> segmentEnds = new ArrayList<>();
        for (int i = 0; i < nSteps; i++) {
            Step st = plan.steps.get(i);
            segmentOfAct[st.out] = segmentEnds.size();
            if (hooksByName.containsKey(plan.acts.get(st.out).name) || i == nSteps - 1) {
                segmentEnds.add(i + 1);
            }
        }
        boolean[] crossesSegment = new boolean[plan.acts.size()];
        for (Step st : plan.steps) {
            for (int in : new int[] {st.in0, st.in1}) {
                if (in >= 0 && segmentOfAct[in] != segmentOfAct[st.out]) {
                    crossesSegment[in] = true;
                }
            }
        }
        float[][] stored = new float[plan.acts.size()][];
        Map<String, Tensor> cached = new LinkedHashMap<>();
        for (int i = 0; i < plan.acts.size(); i++) {
            Act a = plan.acts.get(i);
            boolean keep = a.name.equals("logits") || cacheFilter.test(a.name);
            if (keep || hooksByName.containsKey(a.name) || crossesSegment[i]) {
                // logits and what hooks see may be kept by the caller: those never come from the pool
                int n = Math.multiplyExact(B, a.perSeq);
                stored[i] = a.name.equals("logits") || hooksByName.containsKey(a.name) ? new float[n]
                        : BufferPool.take(n);
            }
            if (keep && !a.name.equals("logits")) {
                cached.put(a.name, new Tensor(batchShape(B, a.seqShape), stored[i]));
            }
        }
        Packed packed = new Packed(weights);
        Frame[] frames = new Frame[Parallel.threads()];
        int segmentStart = 0;
        for (int segmentEnd : segmentEnds) {
            List<Step> segment = plan.steps.subList(segmentStart, segmentEnd);
            Parallel.forRange(B, (worker, from, to) -> {
                Frame f = frame(frames, worker, plan, stored, tokens, T, packed);
                for (int b = from; b < to; b++) {
                    for (Step st : segment) {
                        f.run(st, b);
                    }
                }
            });
            Act a = plan.acts.get(segment.get(segment.size() - 1).out);
            List<Hook> hs = hooksByName.get(a.name);
            if (hs != null) {
                Tensor view = new Tensor(batchShape(B, a.seqShape), stored[plan.idByName.get(a.name)]);
                for (Hook h : hs) {
                    h.apply(view, a.name);
                }
            }
            segmentStart = segmentEnd;
        }
        for (int i = 0; i < stored.length; i++) {
            String name = plan.acts.get(i).name;
            if (stored[i] != null && !cached.containsKey(name) && !hooksByName.containsKey(name)
                    && !name.equals("logits")) {
                BufferPool.give(stored[i]); // read across a hook only: nobody else has seen it
            }
        }
        int logitsId = plan.idByName.get("logits");
        return new Run(new Tensor(new int[] {B, T, cfg.dVocab()}, stored[logitsId]), new ActivationCache(cached));
    }

    private Frame frame(Frame[] frames, int worker, Plan plan, float[][] stored, int[] tokens, int T,
                               Packed packed) {
        if (frames[worker] == null) {
            frames[worker] = new Frame(plan, stored, tokens, T, packed);
        }
        return frames[worker];
    }

    /** TransformerLens puts the head axis before the positions for scores and pattern: [B, H, T, T]. */
    private static int[] batchShape(int B, int[] seqShape) {
        int[] s = new int[seqShape.length + 1];
        s[0] = B;
        System.arraycopy(seqShape, 0, s, 1, seqShape.length);
        return s;
    }

    private void checkTokens(int[] tokens, int B, int T) {
        if (B < 1 || T < 1) {
            throw new TrilensException("a batch needs at least one sequence of at least one token, got " + B + " x " + T);
        }
        if (T > cfg.nCtx()) {
            throw new TrilensException("sequence length " + T + " exceeds the model's n_ctx " + cfg.nCtx());
        }
        if (tokens.length != B * T) {
            throw new TrilensException("expected " + B + " x " + T + " = " + B * T + " tokens, got " + tokens.length);
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= cfg.dVocab()) {
                throw new TrilensException("token " + tokens[i] + " at sequence " + i / T + ", position " + i % T
                        + " is outside the vocabulary [0, " + cfg.dVocab() + ")");
            }
        }
    }

    // -------------------------------------------------------------------------------------------------------------
    // The plan: hook points and steps for sequences of length T

    private static final class Plan {
        final List<Act> acts = new ArrayList<>();
        final Map<String, Integer> idByName = new HashMap<>();
        final List<Step> steps = new ArrayList<>();

        int act(String name, int... seqShape) {
            int n = 1;
            for (int d : seqShape) {
                n *= d;
            }
            acts.add(new Act(name, seqShape, n));
            idByName.put(name, acts.size() - 1);
            return acts.size() - 1;
        }

        /** Adds a step writing a new act; returns that act's id. */
        int step(Kind kind, int in0, int in1, int p0, int p1, String name, int... seqShape) {
            int out = act(name, seqShape);
            steps.add(new Step(kind, out, in0, in1, p0, p1));
            return out;
        }

        int id(String name) {
            return idByName.get(name);
        }
    }

    private Plan plan(int T, boolean withResult) {
        int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead(), M = cfg.dMlp();
        Weights w = weights;
        Plan p = new Plan();
        int embed = p.step(Kind.EMBED, -1, -1, w.offset("embed.W_E"), -1, "hook_embed", T, D);
        int pos = p.step(Kind.POS_EMBED, -1, -1, w.offset("pos_embed.W_pos"), -1, "hook_pos_embed", T, D);
        int resid = -1;
        for (int l = 0; l < cfg.nLayers(); l++) {
            String b = "blocks." + l + ".";
            int residPre = l == 0
                    ? p.step(Kind.RESID_PRE, embed, pos, -1, -1, b + "hook_resid_pre", T, D)
                    : p.step(Kind.RESID_PRE, resid, -1, -1, -1, b + "hook_resid_pre", T, D);
            int attnIn = cfg.layerNorm() ? layerNorm(p, residPre, b + "ln1", T, D) : residPre;
            int q = p.step(Kind.Q, attnIn, -1, l, w.offset(b + "attn.b_Q"), b + "attn.hook_q", T, H, Dh);
            int k = p.step(Kind.K, attnIn, -1, l, w.offset(b + "attn.b_K"), b + "attn.hook_k", T, H, Dh);
            int v = p.step(Kind.V, attnIn, -1, l, w.offset(b + "attn.b_V"), b + "attn.hook_v", T, H, Dh);
            int scores = p.step(Kind.SCORES, q, k, -1, -1, b + "attn.hook_attn_scores", H, T, T);
            int pattern = p.step(Kind.PATTERN, scores, -1, -1, -1, b + "attn.hook_pattern", H, T, T);
            int z = p.step(Kind.Z, pattern, v, -1, -1, b + "attn.hook_z", T, H, Dh);
            int wO = w.offset(b + "attn.W_O"), bO = w.offset(b + "attn.b_O");
            int attnOut;
            if (withResult) {
                int result = p.step(Kind.RESULT, z, -1, wO, -1, b + "attn.hook_result", T, H, D);
                attnOut = p.step(Kind.ATTN_OUT, -1, result, -1, bO, b + "hook_attn_out", T, D);
            } else {
                attnOut = p.step(Kind.ATTN_OUT, z, -1, wO, bO, b + "hook_attn_out", T, D);
            }
            if (cfg.attnOnly()) {
                resid = p.step(Kind.RESID_POST, residPre, attnOut, -1, -1, b + "hook_resid_post", T, D);
                continue;
            }
            int residMid = p.step(Kind.RESID_MID, residPre, attnOut, -1, -1, b + "hook_resid_mid", T, D);
            int mlpIn = cfg.layerNorm() ? layerNorm(p, residMid, b + "ln2", T, D) : residMid;
            int pre = p.step(Kind.MLP_PRE, mlpIn, -1, w.offset(b + "mlp.W_in"), w.offset(b + "mlp.b_in"),
                    b + "mlp.hook_pre", T, M);
            int post = p.step(Kind.MLP_POST, pre, -1, -1, -1, b + "mlp.hook_post", T, M);
            int mlpOut = p.step(Kind.MLP_OUT, post, -1, w.offset(b + "mlp.W_out"), w.offset(b + "mlp.b_out"),
                    b + "hook_mlp_out", T, D);
            resid = p.step(Kind.RESID_POST, residMid, mlpOut, -1, -1, b + "hook_resid_post", T, D);
        }
        int unembedIn = cfg.layerNorm() ? layerNorm(p, resid, "ln_final", T, D) : resid;
        p.step(Kind.LOGITS, unembedIn, -1, w.offset("unembed.W_U"), w.offset("unembed.b_U"), "logits", T,
                cfg.dVocab());
        return p;
    }

    /** The two steps of a LayerNorm (hook_scale, then hook_normalized); returns the normalized act. */
    private int layerNorm(Plan p, int in, String prefix, int T, int D) {
        int scale = p.step(Kind.LN_SCALE, in, -1, -1, -1, prefix + ".hook_scale", T, 1);
        return p.step(Kind.LN_NORMALIZED, in, scale, weights.offset(prefix + ".w"), weights.offset(prefix + ".b"),
                prefix + ".hook_normalized", T, D);
    }

    /** W_Q, W_K, W_V of each layer repacked from [H, D, Dh] to [D, H*Dh], so q = x @ W is one matmul. */
    static final class Packed {
        final float[][] wq, wk, wv;

        Packed(Weights w) {
            int L = w.cfg.nLayers();
            wq = new float[L][];
            wk = new float[L][];
            wv = new float[L][];
            for (int l = 0; l < L; l++) {
                wq[l] = packHeads(w, "blocks." + l + ".attn.W_Q");
                wk[l] = packHeads(w, "blocks." + l + ".attn.W_K");
                wv[l] = packHeads(w, "blocks." + l + ".attn.W_V");
            }
        }

        static float[] packHeads(Weights w, String name) {
            int H = w.cfg.nHeads(), D = w.cfg.dModel(), Dh = w.cfg.dHead();
            int off = w.offset(name);
            float[] out = new float[D * H * Dh];
            for (int h = 0; h < H; h++) {
                for (int d = 0; d < D; d++) {
                    System.arraycopy(w.data, off + (h * D + d) * Dh, out, d * H * Dh + h * Dh, Dh);
                }
            }
            return out;
        }
    }

    /** A worker's view of the pass: where each activation of the current sequence lives (cache or scratch). */
    private final class Frame {
        final Plan plan;
        final float[][] stored;
        final float[][] scratch;
        final int[] tokens;
        final int T;
        final Packed packed;
        final float[] w;

        Frame(Plan plan, float[][] stored, int[] tokens, int T, Packed packed) {
            this.plan = plan;
            this.stored = stored;
            this.tokens = tokens;
            this.T = T;
            this.packed = packed;
            this.w = weights.data;
            this.scratch = new float[plan.acts.size()][];
            for (int i = 0; i < scratch.length; i++) {
                if (stored[i] == null) {
                    scratch[i] = new float[plan.acts.get(i).perSeq];
                }
            }
        }

        float[] arr(int id) {
            return stored[id] != null ? stored[id] : scratch[id];
        }

        int off(int id, int b) {
            return stored[id] != null ? b * plan.acts.get(id).perSeq : 0;
        }

        void run(Step s, int b) {
            int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead(), M = cfg.dMlp(), V = cfg.dVocab();
            float[] out = arr(s.out);
            int o = off(s.out, b);
            float[] x0 = s.in0 < 0 ? null : arr(s.in0);
            int o0 = s.in0 < 0 ? 0 : off(s.in0, b);
            float[] x1 = s.in1 < 0 ? null : arr(s.in1);
            int o1 = s.in1 < 0 ? 0 : off(s.in1, b);
            switch (s.kind) {
                case EMBED -> {
                    for (int t = 0; t < T; t++) {
                        System.arraycopy(w, s.p0 + tokens[b * T + t] * D, out, o + t * D, D);
                    }
                }
                case POS_EMBED -> System.arraycopy(w, s.p0, out, o, T * D);
                case RESID_PRE -> {
                    if (x1 != null) {
                        Kernels.addForward(out, o, x0, o0, x1, o1, T * D);
                    } else {
                        System.arraycopy(x0, o0, out, o, T * D);
                    }
                }
                case LN_SCALE -> Kernels.layerNormScale(out, o, x0, o0, T, D);
                case LN_NORMALIZED -> Kernels.layerNormApply(out, o, x1, o1, x0, o0, w, s.p0, w, s.p1, T, D);
                case Q -> Kernels.matmulForward(out, o, x0, o0, packed.wq[s.p0], 0, w, s.p1, T, D, H * Dh);
                case K -> Kernels.matmulForward(out, o, x0, o0, packed.wk[s.p0], 0, w, s.p1, T, D, H * Dh);
                case V -> Kernels.matmulForward(out, o, x0, o0, packed.wv[s.p0], 0, w, s.p1, T, D, H * Dh);
                case SCORES -> Kernels.attnScoresForward(out, o, x0, o0, x1, o1, T, H, Dh);
                case PATTERN -> Kernels.softmaxForward(out, o, x0, o0, T, H);
                case Z -> Kernels.attnValuesForward(out, o, x0, o0, x1, o1, T, H, Dh);
                case RESULT -> {
                    if (H == 1) {
                        // one head: result [T, 1, D] is z [T, Dh] @ W_O[0], one matmul over all positions
                        Kernels.matmulForward(out, o, x0, o0, w, s.p0, null, 0, T, Dh, D);
                        break;
                    }
                    for (int t = 0; t < T; t++) {
                        for (int h = 0; h < H; h++) {
                            Kernels.matmulForward(out, o + (t * H + h) * D, x0, o0 + (t * H + h) * Dh, w,
                                    s.p0 + h * Dh * D, null, 0, 1, Dh, D);
                        }
                    }
                }
                case ATTN_OUT -> {
                    if (x1 != null) {
                        // from hook_result: the heads' outputs summed, plus b_O
                        for (int t = 0; t < T; t++) {
                            System.arraycopy(w, s.p1, out, o + t * D, D);
                            for (int h = 0; h < H; h++) {
                                Kernels.accumulate(out, o + t * D, x1, o1 + (t * H + h) * D, D);
                            }
                        }
                    } else {
                        // W_O [H, Dh, D] is already [H*Dh, D] row-major: all heads in one matmul
                        Kernels.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, H * Dh, D);
                    }
                }
                case RESID_MID, RESID_POST -> Kernels.addForward(out, o, x0, o0, x1, o1, T * D);
                case MLP_PRE -> Kernels.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, D, M);
                case MLP_POST -> Kernels.reluForward(out, o, x0, o0, T * M);
                case MLP_OUT -> Kernels.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, M, D);
                case LOGITS -> Kernels.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, D, V);
                default -> throw new IllegalStateException("unplanned step " + s.kind);
            }
        }
    }
}
