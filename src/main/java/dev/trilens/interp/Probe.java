package dev.trilens.interp;

import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * What one model does on one token sequence the user typed, for `predict` and `serve`: the predictions at every
 * position, where each head's attention goes, whether the extracted rule (a, b) -> c fires there, the direct logit
 * attribution of the predicted token, and the same predictions under an intervention (an ablation, a moved
 * attention, attention forced to follow the rule).
 *
 * <p>It holds no per-call state: every call runs its own forward passes, so one Probe serves concurrent callers.
 * Only the means for mean-ablation are computed once, on first use, from the evaluation batch.
 *
 * <p>Index convention (as {@link Predictions}): position i predicts the token at i + 1; the rule fires at i when
 * (tokens[i-1], tokens[i]) is an extracted prefix.
 */
public final class Probe {
    /**
     * The JSON writer of `predict --json` and `serve`, so both print the same bytes. Its double writer (Schubfach)
     * is several times faster than Double.toString, which dominated an answer's time.
     */
    public static final ObjectMapper JSON = new ObjectMapper()
            .enable(StreamWriteFeature.USE_FAST_DOUBLE_WRITER.mappedFeature());

    /** How many of the most attended keys each head lists per position. */
    public static final int TOP_KEYS = 3;

    private final HookedTransformer model;
    private final TrigramExtractor.Result rules;
    private final TrigramDataset data;
    private final Supplier<Map<String, float[][]>> means;

    /**
     * @param rules the trigram table extracted from model's weights
     * @param data the evaluation batch mean-ablation averages over; null when unknown (then only zero-ablation)
     */
    public Probe(HookedTransformer model, TrigramExtractor.Result rules, TrigramDataset data) {
        this.model = model;
        this.rules = rules;
        this.data = data;
        this.means = memoize(() -> Ablation.means(model, data, Ablation.targets(model.config())));
    }

    /** Extracts the model's trigram table from its weights (a couple of seconds for the challenge model). */
    public static Probe of(Weights w, TrigramDataset data) {
        return new Probe(new HookedTransformer(w), TrigramExtractor.extract(w), data);
    }

    public ModelConfig config() {
        return model.config();
    }

    public HookedTransformer model() {
        return model;
    }

    public TrigramExtractor.Result rules() {
        return rules;
    }

    public TrigramDataset data() {
        return data;
    }

    // -------------------------------------------------------------------------------------------------------------
    // Input

    /**
     * Parses a token sequence typed by a user: numbers separated by spaces, commas or newlines, optionally inside
     * [ ]. Every problem is one message naming the offending item.
     */
    public static int[] parseTokens(String text, ModelConfig cfg) {
        String s = text.strip();
        if (s.startsWith("[") && s.endsWith("]")) {
            s = s.substring(1, s.length() - 1);
        }
        List<String> items = new ArrayList<>();
        for (String part : s.split("[\\s,]+")) {
            if (!part.isEmpty()) {
                items.add(part);
            }
        }
        int[] out = new int[items.size()];
        for (int i = 0; i < out.length; i++) {
            String item = items.get(i);
            try {
                out[i] = Integer.parseInt(item);
            } catch (NumberFormatException e) {
                String what = item.matches("[+-]?\\d+") ? "is outside the vocabulary" : "is not a whole number";
                throw new TrilensException("token " + (i + 1) + " of the sequence, '" + abbreviate(item) + "', "
                        + what + "; expected token ids 0.." + (cfg.dVocab() - 1));
            }
        }
        return checkTokens(out, cfg);
    }

    /** tokens itself when it is a sequence the model can run; otherwise an error naming the offending item. */
    public static int[] checkTokens(int[] tokens, ModelConfig cfg) {
        if (tokens.length == 0) {
            throw new TrilensException("the token sequence is empty; expected 1.." + cfg.nCtx() + " token ids");
        }
        if (tokens.length > cfg.nCtx()) {
            throw new TrilensException("the token sequence has " + tokens.length + " tokens, more than the model's "
                    + "n_ctx of " + cfg.nCtx());
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= cfg.dVocab()) {
                throw new TrilensException("token " + tokens[i] + " at position " + i + " is outside the "
                        + "vocabulary 0.." + (cfg.dVocab() - 1));
            }
        }
        return tokens;
    }

    private static String abbreviate(String s) {
        return s.length() <= 20 ? s : s.substring(0, 20) + "...";
    }

    // -------------------------------------------------------------------------------------------------------------
    // Predictions and attention

    /** A token and its probability. */
    public record TokenProb(int token, double prob) {
    }

    /** A key position a head attends, with its token and attention weight (float32, as the pattern is). */
    public record Key(int pos, int token, float weight) {
    }

    /** The extracted rule that fires at a position: (a, b) are tokens i-1 and i, c the completion it predicts. */
    public record Rule(int a, int b, int c) {
    }

    /**
     * One head's attention from one query position. JSON keys: {@code head} ("L0H0"), {@code prev} (weight on the
     * previous position, null at position 0), {@code top_keys} (the {@value TOP_KEYS} largest weights), {@code row}
     * (the weights on keys 0..pos).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record HeadAttention(String head, Float prev, List<Key> topKeys, float[] row) {
    }

    /**
     * One position. JSON keys: {@code pos}, {@code token}, {@code top} (the top-k next tokens), {@code next_token}
     * and {@code next_prob} (the actual next token and its probability; null at the last position),
     * {@code prev_attention} (the largest attention on position pos - 1 over the heads; null at position 0),
     * {@code attention} (per head), {@code rule} (null when the extracted rule does not fire).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Position(int pos, int token, List<TokenProb> top, Integer nextToken, Double nextProb,
                           Float prevAttention, List<HeadAttention> attention, Rule rule) {
    }

    /** {@code predict --json} and {@code POST /api/predict}: the sequence and every position. */
    public record Prediction(int[] tokens, List<Position> positions) {
    }

    /** Head names in the order positions list them: L0H0, L0H1, ..., L1H0, ... */
    public List<String> headNames() {
        List<String> out = new ArrayList<>();
        for (int l = 0; l < config().nLayers(); l++) {
            for (int h = 0; h < config().nHeads(); h++) {
                out.add("L" + l + "H" + h);
            }
        }
        return out;
    }

    /** The extracted completion of (a, b), or -1. */
    public int ruleFor(int a, int b) {
        return rules.completionOf(a, b);
    }

    public Prediction predict(int[] tokens, int topK) {
        checkTokens(tokens, config());
        checkTopK(topK);
        ModelConfig cfg = config();
        int T = tokens.length, V = cfg.dVocab(), L = cfg.nLayers(), H = cfg.nHeads();
        HookedTransformer.Run run = model.runWithCache(tokens, 1, T, n -> n.endsWith("attn.hook_pattern"));
        float[][] patterns = new float[L][];
        for (int l = 0; l < L; l++) {
            patterns[l] = run.cache().get(HookNames.full("pattern", l)).data();
        }
        float[] logits = run.logits().data();
        List<String> heads = headNames();
        List<Position> out = new ArrayList<>(T);
        double[] p = new double[V];
        for (int i = 0; i < T; i++) {
            Logits.softmax(logits, i * V, V, p);
            List<HeadAttention> att = new ArrayList<>(L * H);
            Float prevMax = null;
            for (int l = 0; l < L; l++) {
                for (int h = 0; h < H; h++) {
                    int off = (h * T + i) * T;
                    float[] row = Arrays.copyOfRange(patterns[l], off, off + i + 1);
                    Float prev = i > 0 ? row[i - 1] : null;
                    if (prev != null && (prevMax == null || prev > prevMax)) {
                        prevMax = prev;
                    }
                    att.add(new HeadAttention(heads.get(l * H + h), prev, topKeys(row, tokens), row));
                }
            }
            Integer next = i + 1 < T ? tokens[i + 1] : null;
            out.add(new Position(i, tokens[i], top(p, topK), next, next == null ? null : p[next], prevMax, att,
                    rule(tokens, i)));
        }
        return new Prediction(tokens.clone(), out);
    }

    /** The extracted rule firing at position i, or null. */
    public Rule rule(int[] tokens, int i) {
        if (i < 1) {
            return null;
        }
        int c = ruleFor(tokens[i - 1], tokens[i]);
        return c < 0 ? null : new Rule(tokens[i - 1], tokens[i], c);
    }

    /** The TOP_KEYS largest weights of row, largest first (ties: the later key, the nearer one). */
    private static List<Key> topKeys(float[] row, int[] tokens) {
        int n = Math.min(TOP_KEYS, row.length);
        List<Key> out = new ArrayList<>(n);
        int prevBest = -1;
        for (int r = 0; r < n; r++) {
            int best = -1;
            for (int k = row.length - 1; k >= 0; k--) {
                if (isAfter(row, k, prevBest) && (best < 0 || row[k] > row[best])) {
                    best = k;
                }
            }
            out.add(new Key(best, tokens[best], row[best]));
            prevBest = best;
        }
        return out;
    }

    /** Whether key k comes after key prev in the order largest weight first, later key first on ties. */
    private static boolean isAfter(float[] row, int k, int prev) {
        return prev < 0 || row[k] < row[prev] || (row[k] == row[prev] && k < prev);
    }

    /** The k most likely tokens, most likely first (ties by token id, as argmax breaks them). */
    static List<TokenProb> top(double[] p, int k) {
        List<TokenProb> out = new ArrayList<>(k);
        boolean[] taken = new boolean[p.length];
        for (int r = 0; r < Math.min(k, p.length); r++) {
            int best = -1;
            for (int v = 0; v < p.length; v++) {
                if (!taken[v] && (best < 0 || p[v] > p[best])) {
                    best = v;
                }
            }
            taken[best] = true;
            out.add(new TokenProb(best, p[best]));
        }
        return out;
    }


    private void checkTopK(int topK) {
        if (topK < 1 || topK > config().dVocab()) {
            throw new TrilensException("top must be 1.." + config().dVocab() + " (the vocabulary), got " + topK);
        }
    }

    // -------------------------------------------------------------------------------------------------------------
    // Direct logit attribution

    /** One component's direct contribution. */
    public record Contribution(String name, String source, double value) {
    }

    /**
     * Direct logit attribution, at one position, of the token the model predicts there: {@link Attribution}'s
     * direction (its logit minus the mean logit), split over the components. JSON keys: {@code pos},
     * {@code token} (the top-1 prediction), {@code prob}, {@code direction}, {@code total} (the attributed logit
     * difference), {@code components}.
     */
    public record Dla(int pos, int token, double prob, String direction, double total,
                      List<Contribution> components) {
    }

    /** {@link Attribution#DIRECTION}, with the predicted token as the target. */
    public static final String DLA_DIRECTION = "logit of the predicted token minus the mean logit over the vocabulary";

    public Dla dla(int[] tokens, int pos) {
        checkTokens(tokens, config());
        ModelConfig cfg = config();
        if (pos < 0 || pos >= tokens.length) {
            throw new TrilensException("position " + pos + " is outside the sequence of " + tokens.length
                    + " tokens (0.." + (tokens.length - 1) + ")");
        }
        int V = cfg.dVocab();
        Tensor logits = model.forward(Arrays.copyOf(tokens, pos + 1), 1, pos + 1);
        double[] p = new double[V];
        Logits.softmax(logits.data(), pos * V, V, p);
        int predicted = top(p, 1).get(0).token();
        // causal attention: the tokens after pos change nothing at pos, so the prefix ending at pos, with the
        // predicted token as pos's target, attributes exactly the prediction made there (the last position too)
        Attribution.Table t = Attribution.perPosition(model, Arrays.copyOf(tokens, pos + 1), 1, pos + 1, pos + 1,
                (s, q) -> q == pos ? predicted : tokens[q + 1]);
        List<Contribution> comps = new ArrayList<>();
        for (int c = 0; c < t.names().size(); c++) {
            comps.add(new Contribution(t.names().get(c), t.sources().get(c), t.values()[c][pos]));
        }
        return new Dla(pos, predicted, p[predicted], DLA_DIRECTION, t.actual()[pos], comps);
    }

    // -------------------------------------------------------------------------------------------------------------
    // Interventions

    /**
     * One position before and after an intervention: the top-1 token with its probability, and the probability of
     * the actual next token (null at the last position). JSON keys: {@code pos}, {@code token}, {@code before},
     * {@code after}, {@code next_before}, {@code next_after}, {@code changed} (the top-1 token differs).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Change(int pos, int token, TokenProb before, TokenProb after, Double nextBefore, Double nextAfter,
                         boolean changed) {
    }

    /**
     * An intervention's effect on every position. JSON keys: {@code intervention} (what was done), {@code positions}
     * (each a {@link Change}), {@code changed} (positions whose top-1 changed), {@code summary}.
     */
    public record Effect(String intervention, List<Change> positions, List<Integer> changed, String summary) {
    }

    /** The ablation targets by name: L0H0, ..., L0.mlp_out, ..., pos_embed. */
    public List<String> ablationTargets() {
        List<String> out = new ArrayList<>();
        for (Ablation.Target t : Ablation.targets(config())) {
            out.add(t.name());
        }
        return out;
    }

    /** Zero- or mean-ablates a target of {@link #ablationTargets()} on this sequence. */
    public Effect ablate(int[] tokens, String target, Ablation.Mode mode) {
        checkTokens(tokens, config());
        Ablation.Target t = null;
        for (Ablation.Target c : Ablation.targets(config())) {
            if (c.name().equals(target)) {
                t = c;
            }
        }
        if (t == null) {
            throw new TrilensException("unknown ablation target '" + target + "'; expected one of "
                    + ablationTargets());
        }
        float[][] mean = null;
        if (mode != Ablation.Mode.ZERO) {
            if (data == null) {
                throw new TrilensException(mode.key + "-ablation needs the evaluation batch to average over, and "
                        + "none is known for this model");
            }
            mean = means.get().get(t.hook());
        }
        String what = mode.key + "-ablating " + target + (mode == Ablation.Mode.ZERO ? "" : " (" + Ablation.MEAN_OVER
                + ")");
        return effect(tokens, List.of(Ablation.hook(t, mode, mean, config())), what);
    }

    /**
     * Moves position queryPos's attention onto newKeyPos: {@link Patching#attentionSwap} (layer / head -1: all).
     */
    public Patching.SwapResult patch(int[] tokens, int queryPos, int newKeyPos, int layer, int head) {
        checkTokens(tokens, config());
        return Patching.attentionSwap(model, tokens, queryPos, newKeyPos, layer, head);
    }

    /**
     * Forces every head of the first layer to attend as the extracted rule says: where (tokens[i-1], tokens[i]) is
     * an extracted prefix, all attention goes to i - 1; elsewhere the attention on i - 1 is removed and the rest
     * renormalised (all on i itself when nothing is left).
     */
    public Effect forceRule(int[] tokens) {
        checkTokens(tokens, config());
        int T = tokens.length;
        boolean[] fires = new boolean[T];
        int nFire = 0;
        for (int i = 1; i < T; i++) {
            fires[i] = rule(tokens, i) != null;
            nFire += fires[i] ? 1 : 0;
        }
        Hook.At hook = Hook.at(HookNames.full("pattern", 0), (act, name) -> {
            float[] d = act.data();
            int H = act.dim(1);
            for (int h = 0; h < H; h++) {
                for (int q = 1; q < T; q++) {
                    int row = act.index(0, h, q, 0);
                    if (fires[q]) {
                        Arrays.fill(d, row, row + T, 0f);
                        d[row + q - 1] = 1f;
                        continue;
                    }
                    d[row + q - 1] = 0f;
                    double rest = 0;
                    for (int k = 0; k <= q; k++) {
                        rest += d[row + k];
                    }
                    if (rest <= 0) {
                        d[row + q] = 1f;
                        continue;
                    }
                    for (int k = 0; k <= q; k++) {
                        d[row + k] = (float) (d[row + k] / rest);
                    }
                }
            }
        });
        Effect e = effect(tokens, List.of(hook), "attention forced to follow the extracted rule (previous token "
                + "where (a, b) is an extracted prefix, not the previous token elsewhere)");
        int before = 0, after = 0;
        for (Change c : e.positions()) {
            Rule r = rule(tokens, c.pos());
            if (r != null) {
                before += c.before().token() == r.c() ? 1 : 0;
                after += c.after().token() == r.c() ? 1 : 0;
            }
        }
        String summary = nFire == 0 ? "the extracted rule fires nowhere in this sequence; " + e.summary()
                : String.format("the rule fires at %d position%s; its c is the top-1 prediction at %d of them before "
                + "and %d after; %s", nFire, nFire == 1 ? "" : "s", before, after, e.summary());
        return new Effect(e.intervention(), e.positions(), e.changed(), summary);
    }

    private Effect effect(int[] tokens, List<Hook.At> hooks, String what) {
        int T = tokens.length, V = config().dVocab();
        float[] clean = model.forward(tokens, 1, T).data();
        float[] hooked = model.runWithHooks(tokens, 1, T, hooks).data();
        double[] pb = new double[V], pa = new double[V];
        List<Change> out = new ArrayList<>(T);
        List<Integer> changed = new ArrayList<>();
        for (int i = 0; i < T; i++) {
            Logits.softmax(clean, i * V, V, pb);
            Logits.softmax(hooked, i * V, V, pa);
            TokenProb b = top(pb, 1).get(0), a = top(pa, 1).get(0);
            Integer next = i + 1 < T ? tokens[i + 1] : null;
            out.add(new Change(i, tokens[i], b, a, next == null ? null : pb[next], next == null ? null : pa[next],
                    a.token() != b.token()));
            if (a.token() != b.token()) {
                changed.add(i);
            }
        }
        String summary = changed.isEmpty() ? "no top-1 prediction changed"
                : String.format("the top-1 prediction changed at %d of %d positions", changed.size(), T);
        return new Effect(what, out, changed, summary);
    }

    private static <T> Supplier<T> memoize(Supplier<T> s) {
        return new Supplier<>() {
            private T value;

            @Override
            public synchronized T get() {
                if (value == null) {
                    value = s.get();
                }
                return value;
            }
        };
    }
}
