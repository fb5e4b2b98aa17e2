package dev.trilens.model;

import dev.trilens.TrilensException;
import dev.trilens.model.kernels.Kernels;
import dev.trilens.model.kernels.TensorOps;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * TransformerLens's HookedTransformer over a batch of token sequences: the {@link Forward} pass (the one training runs
 * too, here in TransformerLens's shapes) with its hook points exposed as hooks and cache.
 *
 * <p>Each worker runs one sequence through every layer before the next (its activations stay in cache), keeping only
 * what the cache filter asks for. A hook splits the pass at its hook point: everything before it runs for the whole
 * batch, then the hook sees and may replace the full [batch, ...] activation, as in TransformerLens.
 */
public final class HookedTransformer {

    /** A forward pass's logits [B, T, V] (null if it was run without them) and the activations it was asked to keep. */
    public record Run(Tensor logits, ActivationCache cache) {
    }

    private final Weights weights;
    private final ModelConfig cfg;
    private final TensorOps ops = Kernels.ops();
    /** W_Q, W_K, W_V repacked as [D, H*Dh] per layer, widths unpadded. */
    private final PackedParams packing;
    /** The planned passes by T (negative: with per-head results); see {@link #forward}. */
    private final java.util.concurrent.ConcurrentHashMap<Integer, Forward> plans =
            new java.util.concurrent.ConcurrentHashMap<>();

    public HookedTransformer(Weights weights) {
        this.weights = weights;
        this.cfg = weights.cfg;
        this.packing = new PackedParams(weights.layout, cfg, 1);
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
        for (String name : forward(1, true).names()) {
            if (!name.equals(HookNames.LOGITS)) {
                names.add(name);
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
        return run(tokens, B, T, cacheFilter, hooks, true);
    }

    /**
     * returnLogits false: the pass stops before the unembed (as TransformerLens's {@code return_type=None}; with
     * LayerNorm, ln_final still runs), for a caller that reads only the cache; the {@link Run}'s logits are null.
     */
    public Run run(int[] tokens, int B, int T, Predicate<String> cacheFilter, List<Hook.At> hooks,
                   boolean returnLogits) {
        checkTokens(tokens, B, T);
        Map<String, List<Hook>> hooksByName = new HashMap<>();
        for (Hook.At h : hooks) {
            hooksByName.computeIfAbsent(h.name(), n -> new ArrayList<>()).add(h.hook());
        }
        // TransformerLens computes per-head outputs only when asked for (use_attn_result); so do we
        boolean wantResult = false;
        for (int l = 0; l < cfg.nLayers(); l++) {
            String result = HookNames.attn(l, "result");
            wantResult |= cacheFilter.test(result) || hooksByName.containsKey(result);
        }
        Forward pass = forward(T, wantResult);
        for (String name : hooksByName.keySet()) {
            if (!pass.has(name) || name.equals(HookNames.LOGITS)) {
                throw new TrilensException("no hook point named '" + name + "'; this model's hook points are "
                        + hookNames());
            }
        }
        // The steps split into segments, each ending at a hooked activation. Within a segment each worker runs
        // one sequence through every step (activations stay in cache); between segments the hooks see the whole
        // batch. So an activation is kept batch-wide only if it is cached, hooked, or read in a later segment.
        // the unembed is the last step: without it, what the cache keeps ends the pass
        List<Forward.Step> steps = returnLogits ? pass.steps : pass.steps.subList(0, pass.steps.size() - 1);
        int[] segmentOfAct = new int[pass.acts.size()];
        List<Integer> segmentEnds = segments(pass, steps, hooksByName, segmentOfAct);
        boolean[] crossesSegment = crossesSegment(steps, segmentOfAct);
        float[][] stored = new float[pass.acts.size()][];
        Map<String, Tensor> cached = new LinkedHashMap<>();
        allocate(pass, B, cacheFilter, hooksByName, returnLogits, crossesSegment, stored, cached);
        // packed on every run: a caller may have changed the weights in place since the last one
        float[] packed = new float[packing.size];
        packing.pack(weights.data, packed);
        pass.bindWeights(packed);
        Forward.Frame[] frames = new Forward.Frame[Parallel.threads()];
        int segmentStart = 0;
        for (int segmentEnd : segmentEnds) {
            List<Forward.Step> segment = steps.subList(segmentStart, segmentEnd);
            Parallel.forRange(B, (worker, from, to) -> {
                if (frames[worker] == null) {
                    frames[worker] = new Forward.Frame(pass, stored);
                }
                Forward.Frame f = frames[worker];
                for (int b = from; b < to; b++) {
                    pass.run(segment, f, b, tokens, b * T);
                }
            });
            Forward.Act a = pass.acts.get(segment.get(segment.size() - 1).out());
            List<Hook> hs = hooksByName.get(a.name());
            if (hs != null) {
                Tensor view = new Tensor(batchShape(B, a.seqShape()), stored[pass.id(a.name())]);
                for (Hook h : hs) {
                    h.apply(view, a.name());
                }
            }
            segmentStart = segmentEnd;
        }
        giveBack(pass, stored, cached, hooksByName);
        Tensor logits = returnLogits ? new Tensor(new int[] {B, T, cfg.dVocab()}, stored[pass.id(HookNames.LOGITS)])
                : null;
        return new Run(logits, new ActivationCache(cached));
    }

    // The loops of run's set-up, each a method of its own: run itself then has almost no loop of its own, so a caller
    // running thousands of batches (dynamics) leaves it to the quick compiler, where as one method the optimizing
    // compiler compiled it three times over (on-stack, per loop, and whole), ~1.8 s of a core (JFR jdk.Compilation).

    /** The steps' segments, each ending at a hooked activation (or the last step): their ends, and each act's. */
    private static List<Integer> segments(Forward pass, List<Forward.Step> steps, Map<String, List<Hook>> hooksByName,
                                          int[] segmentOfAct) {
        int nSteps = steps.size();
        List<Integer> segmentEnds = new ArrayList<>();
        for (int i = 0; i < nSteps; i++) {
            Forward.Step st = steps.get(i);
            segmentOfAct[st.out()] = segmentEnds.size();
            if (hooksByName.containsKey(pass.acts.get(st.out()).name()) || i == nSteps - 1) {
                segmentEnds.add(i + 1);
            }
        }
        return segmentEnds;
    }

    /** Which activations a later segment reads. */
    private static boolean[] crossesSegment(List<Forward.Step> steps, int[] segmentOfAct) {
        boolean[] crosses = new boolean[segmentOfAct.length];
        for (Forward.Step st : steps) {
            if (st.in0() >= 0 && segmentOfAct[st.in0()] != segmentOfAct[st.out()]) {
                crosses[st.in0()] = true;
            }
            if (st.in1() >= 0 && segmentOfAct[st.in1()] != segmentOfAct[st.out()]) {
                crosses[st.in1()] = true;
            }
        }
        return crosses;
    }

    /** stored[i]: a batch-wide array for each activation that is cached, hooked or read across segments. */
    private static void allocate(Forward pass, int B, Predicate<String> cacheFilter,
                                 Map<String, List<Hook>> hooksByName, boolean returnLogits, boolean[] crossesSegment,
                                 float[][] stored, Map<String, Tensor> cached) {
        for (int i = 0; i < pass.acts.size(); i++) {
            Forward.Act a = pass.acts.get(i);
            boolean logits = a.name().equals(HookNames.LOGITS);
            if (logits && !returnLogits) {
                continue;
            }
            boolean keep = logits || cacheFilter.test(a.name());
            if (keep || hooksByName.containsKey(a.name()) || crossesSegment[i]) {
                // logits and what hooks see may be kept by the caller: those never come from the pool
                int n = Math.multiplyExact(B, a.perSeq());
                stored[i] = logits || hooksByName.containsKey(a.name()) ? new float[n] : BufferPool.take(n);
            }
            if (keep && !logits) {
                cached.put(a.name(), new Tensor(batchShape(B, a.seqShape()), stored[i]));
            }
        }
    }

    /** Returns to the pool what only a hook boundary needed: nobody else has seen it. */
    private static void giveBack(Forward pass, float[][] stored, Map<String, Tensor> cached,
                                 Map<String, List<Hook>> hooksByName) {
        for (int i = 0; i < stored.length; i++) {
            String name = pass.acts.get(i).name();
            if (stored[i] != null && !cached.containsKey(name) && !hooksByName.containsKey(name)
                    && !name.equals(HookNames.LOGITS)) {
                BufferPool.give(stored[i]);
            }
        }
    }

    /**
     * The inference forward for sequences of T: unpadded widths (TransformerLens's shapes), query-major attention. A
     * copy of a plan kept per (T, perHeadResult): a caller running many batches (dynamics runs thousands) would
     * otherwise plan the pass, names and maps, every time.
     */
    private Forward forward(int T, boolean perHeadResult) {
        Forward planned = plans.computeIfAbsent(perHeadResult ? -T : T,
                k -> new Forward(cfg, packing, ops, T, new Forward.Options(true, perHeadResult, false, false)));
        return new Forward(planned);
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
}
