package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Where the trigram mechanism fails, part two: families of generated inputs that try to break it, each against a
 * control.
 *
 * <p><b>Adversarial families.</b> Each generates n random sequences of the dataset's length (uniform tokens with the
 * dataset's trigrams forced left to right, as the generator does), then places a trigram prefix (a, b) the model
 * knows (argmax c with P(c) > 0.5 at position 1 of [a, b, c]) at positions (p-1, p) and applies the family's change.
 * Its control is the same sequence without the change (for the position families: the pair in the middle of the
 * context instead). "Fooled" means the argmax at p is not c for a true prefix; for the near-miss family (a non-prefix
 * pair, whose next token is uniform in the data) it means the model puts more than 0.5 on one token.
 */
public final class AdversarialFamilies {
    private AdversarialFamilies() {
    }

    /** One generated input where the model was fooled: the tokens up to p, the expected and predicted token. */
    public record Example(int[] context, int p, int a, int b, int expected, int predicted, double probPredicted) {
    }

    /**
     * @param meanProb for true-prefix families the mean P(c) at p, for the near-miss family the mean largest
     *                 probability at p; controlMeanProb likewise for the control
     */
    public record Family(String name, String description, int n, int fooled, double fooledRate, int controlFooled,
                         double controlFooledRate, double meanProb, double controlMeanProb, List<Example> examples) {
    }


    /** The adversarial families start from trigrams the model predicts with more than this P(c) at position 1. */
    public static final double KNOWN_PROB = 0.5;
    static final int MAX_EXAMPLES = 3;
    static final int COPIES = 3;

    /**
     * A generated input: the context it was built on, its tokens (the pair placed, the family's change applied), the
     * position p of b, and the pair's expected completion (-1: none).
     */
    private record Sample(int[] ctx, int[] tokens, int p, int a, int b, int expected, int extra) {
        Sample with(int[] newTokens) {
            return new Sample(ctx, newTokens, p, a, b, expected, extra);
        }
    }

    /** Changes a copy of a base sample (and may pick another p); rng is the family's. */
    @FunctionalInterface
    private interface Change {
        Sample apply(Sample base, SplittableRandom rng);
    }

    public static List<Family> adversarial(HookedTransformer model, TrigramDataset data,
                                           TrigramExtractor.Result extracted, int n, long seed) {
        MissCatalogue.check(model, data);
        if (n < 1) {
            throw new TrilensException("adversarial search needs at least 1 sample per family, got " + n);
        }
        int T = data.seqLen();
        int[][] tri = data.trigrams();
        double[] probC = new double[tri.length];
        boolean[] right = ExtractionScore.predictedTrigrams(model, data, probC);
        List<int[]> known = new ArrayList<>();
        for (int i = 0; i < tri.length; i++) {
            if (right[i] && probC[i] > KNOWN_PROB) {
                known.add(tri[i]);
            }
        }
        List<Family> out = new ArrayList<>();
        if (known.isEmpty()) {
            return out;
        }
        int mid = Math.max(2, T / 2);
        int minP = Math.min(T - 2, COPIES + 2);
        // true prefixes in the middle of the context, with one change each
        out.add(family("a_elsewhere", "the prefix (a, b) at (p-1, p), and a copied to " + COPIES
                        + " random earlier positions", model, data, known, n, seed, 1, minP,
                (s, rng) -> withCopies(s, s.a, rng), null));
        out.add(family("b_elsewhere", "the prefix (a, b) at (p-1, p), and b copied to " + COPIES
                        + " random earlier positions", model, data, known, n, seed, 2, minP,
                (s, rng) -> withCopies(s, s.b, rng), null));
        List<int[]> withSibling = new ArrayList<>();
        for (int[] t : known) {
            for (int[] u : tri) {
                if (u[1] == t[1] && u[0] != t[0]) {
                    withSibling.add(new int[] {t[0], t[1], t[2], u[0]});
                }
            }
        }
        if (!withSibling.isEmpty()) {
            out.add(family("sibling_a_before", "the prefix (a, b) at (p-1, p) with a' of another trigram (a', b, c') "
                            + "at p-2: ..., a', a, b (two valid first tokens for b)", model, data, withSibling, n,
                    seed, 9, minP, (s, rng) -> {
                        int[] t = s.tokens.clone();
                        if (s.p >= 2) {
                            t[s.p - 2] = s.extra;
                        }
                        return s.with(t);
                    }, null));
        }
        out.add(family("b_before_a", "the prefix (a, b) at (p-1, p) with b right before a: ..., b, a, b", model, data,
                known, n, seed, 3, minP, (s, rng) -> {
                    int[] t = s.tokens.clone();
                    if (s.p >= 2) {
                        t[s.p - 2] = s.b;
                    }
                    return s.with(t);
                }, null));
        // the position families: the same samples moved to an extreme position vs the middle
        out.add(family("prefix_at_start", "the prefix at positions (0, 1) vs the middle of the context", model, data,
                known, n, seed, 4, minP, (s, rng) -> moved(s, 1), (s, rng) -> moved(s, mid)));
        out.add(family("prefix_early", "the prefix at positions (1, 2) vs the middle", model, data, known, n, seed,
                5, minP, (s, rng) -> moved(s, 2), (s, rng) -> moved(s, mid)));
        out.add(family("prefix_at_end", "the prefix at the last trained positions (T-3, T-2) vs the middle", model,
                data, known, n, seed, 6, minP, (s, rng) -> moved(s, T - 2), (s, rng) -> moved(s, mid)));
        out.add(family("prefix_at_final_position", "the prefix at (T-2, T-1): the final position, whose prediction "
                        + "no training target ever used, vs the middle", model, data, known, n, seed, 7, minP,
                (s, rng) -> moved(s, T - 1), (s, rng) -> moved(s, mid)));
        // near misses: non-prefix pairs (a', b) whose QK score (from the extractor) says "attend a'"
        out.add(nearMiss(model, data, extracted, n, seed, 8, minP));
        return out;
    }

    private static Sample withCopies(Sample s, int token, SplittableRandom rng) {
        int[] t = s.tokens.clone();
        for (int k = 0; k < COPIES && s.p - 2 > 0; k++) {
            t[rng.nextInt(s.p - 2)] = token; // positions 0..p-3
        }
        return s.with(t);
    }

    /** The same context with the pair placed at (p-1, p) instead. */
    private static Sample moved(Sample s, int p) {
        return place(s.ctx, p, s.a, s.b, s.expected, s.extra);
    }

    /** Uniform tokens with the dataset's trigrams forced left to right, as TrigramDataset generates them. */
    private static int[] context(TrigramDataset data, SplittableRandom rng) {
        int T = data.seqLen(), V = data.dVocab();
        int[] t = new int[T];
        for (int i = 0; i < T; i++) {
            t[i] = rng.nextInt(V);
        }
        for (int i = 0; i + 2 < T; i++) {
            int c = data.completionOf(t[i], t[i + 1]);
            if (c >= 0) {
                t[i + 2] = c;
            }
        }
        return t;
    }

    private static Sample place(int[] ctx, int p, int a, int b, int expected) {
        return place(ctx, p, a, b, expected, -1);
    }

    private static Sample place(int[] ctx, int p, int a, int b, int expected, int extra) {
        int[] t = ctx.clone();
        t[p - 1] = a;
        t[p] = b;
        if (p + 1 < t.length && expected >= 0) {
            t[p + 1] = expected;
        }
        return new Sample(ctx, t, p, a, b, expected, extra);
    }

    private static Family family(String name, String description, HookedTransformer model, TrigramDataset data,
                                 List<int[]> known, int n, long seed, int salt, int minP, Change change,
                                 Change control) {
        int T = data.seqLen();
        SplittableRandom rng = new SplittableRandom(seed * 1_000_003L + salt);
        Sample[] test = new Sample[n], ctrl = new Sample[n];
        for (int i = 0; i < n; i++) {
            int[] tr = known.get(rng.nextInt(known.size()));
            int p = minP + rng.nextInt(Math.max(1, T - 1 - minP)); // minP..T-2
            Sample base = place(context(data, rng), p, tr[0], tr[1], tr[2], tr.length > 3 ? tr[3] : -1);
            test[i] = change.apply(base, rng);
            ctrl[i] = control == null ? base : control.apply(base, rng);
        }
        return score(name, description, model, data, test, ctrl, false);
    }

    private static Family nearMiss(HookedTransformer model, TrigramDataset data, TrigramExtractor.Result extracted,
                                   int n, long seed, int salt, int minP) {
        int V = data.dVocab(), T = data.seqLen();
        TrigramExtractor.PairTables pt = extracted.pairs();
        // second tokens of the dataset's trigrams: a near miss shares b with a real prefix
        boolean[] isB = new boolean[V];
        for (int[] t : data.trigrams()) {
            isB[t[1]] = true;
        }
        List<int[]> candidates = new ArrayList<>();
        List<int[]> controls = new ArrayList<>();
        for (int a = 0; a < V; a++) {
            for (int b = 0; b < V; b++) {
                if (isB[b] && data.completionOf(a, b) < 0) {
                    controls.add(new int[] {a, b});
                    candidates.add(new int[] {a, b});
                }
            }
        }
        // the highest QK attention first; keep those above 0.5, or at least the top 20
        candidates.sort((x, y) -> Float.compare(pt.attnPrev()[pt.idx(y[0], y[1])], pt.attnPrev()[pt.idx(x[0], x[1])]));
        int keep = 0;
        while (keep < candidates.size() && pt.attnPrev()[pt.idx(candidates.get(keep)[0], candidates.get(keep)[1])] > 0.5) {
            keep++;
        }
        keep = Math.max(keep, Math.min(20, candidates.size()));
        List<int[]> pool = candidates.subList(0, keep);
        String desc = "a non-prefix pair (a', b) placed at (p-1, p), from the " + pool.size() + " with the highest "
                + "extracted attention on a'" + (pool.isEmpty() ? "" : String.format(" (%.3f to %.3f)",
                pt.attnPrev()[pt.idx(pool.get(0)[0], pool.get(0)[1])],
                pt.attnPrev()[pt.idx(pool.get(pool.size() - 1)[0], pool.get(pool.size() - 1)[1])]))
                + "; b is some trigram's second token; vs uniformly random non-prefix pairs with such a b; fooled = "
                + "more than 0.5 on one token";
        if (pool.isEmpty()) {
            return new Family("near_miss", desc, 0, 0, Double.NaN, 0, Double.NaN, Double.NaN, Double.NaN, List.of());
        }
        SplittableRandom rng = new SplittableRandom(seed * 1_000_003L + salt);
        Sample[] test = new Sample[n], ctrl = new Sample[n];
        for (int i = 0; i < n; i++) {
            int[] pair = pool.get(rng.nextInt(pool.size()));
            int[] cpair = controls.get(rng.nextInt(controls.size()));
            int p = minP + rng.nextInt(Math.max(1, T - 1 - minP));
            int[] base = context(data, rng);
            test[i] = place(base, p, pair[0], pair[1], -1);
            ctrl[i] = place(base, p, cpair[0], cpair[1], -1);
        }
        return score("near_miss", desc, model, data, test, ctrl, true);
    }

    private static Family score(String name, String description, HookedTransformer model, TrigramDataset data,
                                Sample[] test, Sample[] ctrl, boolean nonPrefix) {
        int n = test.length;
        double[] meanProb = new double[2];
        int[] fooled = new int[2];
        List<Example> examples = new ArrayList<>();
        Sample[][] sets = {test, ctrl};
        for (int s = 0; s < 2; s++) {
            Sample[] set = sets[s];
            int T = data.seqLen(), V = data.dVocab();
            int[] tokens = new int[n * T];
            for (int i = 0; i < n; i++) {
                System.arraycopy(set[i].tokens, 0, tokens, i * T, T);
            }
            float[] lg = model.forward(tokens, n, T).data();
            for (int i = 0; i < n; i++) {
                Sample x = set[i];
                int row = (i * T + x.p) * V;
                int pred = Logits.argmax(lg, row, V);
                double pPred = Math.exp(Logits.logProb(lg, row, V, pred));
                boolean f;
                if (nonPrefix) {
                    f = pPred > 0.5;
                    meanProb[s] += pPred / n;
                } else {
                    f = pred != x.expected;
                    meanProb[s] += Math.exp(Logits.logProb(lg, row, V, x.expected)) / n;
                }
                if (f) {
                    fooled[s]++;
                    if (s == 0 && examples.size() < MAX_EXAMPLES) {
                        examples.add(new Example(Arrays.copyOfRange(x.tokens, 0, x.p + 1), x.p, x.a, x.b, x.expected,
                                pred, pPred));
                    }
                }
            }
        }
        return new Family(name, description, n, fooled[0], fooled[0] / (double) n, fooled[1], fooled[1] / (double) n,
                meanProb[0], meanProb[1], List.copyOf(examples));
    }

}
