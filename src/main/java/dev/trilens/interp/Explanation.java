package dev.trilens.interp;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The mechanism in words: a short list of claims, each generated from this model's numbers, with the numbers as
 * evidence and the report section that shows them. Nothing here is fixed text about the challenge model: where a
 * claim does not hold for the model at hand, the sentence says what the numbers say instead.
 *
 * <p>It reads the other sections (as analysis.json's tree), so its evidence is the same numbers a script reads there,
 * and measures one thing they do not keep: the head's attention at the positions of learned prefixes.
 */
public final class Explanation {

    /**
     * One claim.
     *
     * @param evidence the numbers behind the text, by name (what the text quotes, unrounded)
     * @param section the report section (its HTML id) that shows the evidence
     */
    public record Claim(String topic, String text, Map<String, Object> evidence, String section) {
    }

    /** A term a learner may not know, in one plain sentence. */
    public record Term(String term, String meaning) {
    }

    /** The head attends "to a" at a learned prefix when its mean attention there is above this. */
    static final double ATTENDS = 0.5;

    private Explanation() {
    }

    public static final List<Term> GLOSSARY = List.of(
            new Term("prefix", "the first two tokens (a, b) of a trigram (a, b, c); the model can only predict c "
                    + "once it has seen b, so the prediction happens at b's position"),
            new Term("QK score advantage", "the head's attention score from b to the previous token a minus its "
                    + "score from b to itself; the softmax turns a positive advantage into attention on a"),
            new Term("AUC", "the chance that a randomly chosen prefix scores higher than a randomly chosen other "
                    + "pair: 1 separates them perfectly, 0.5 is no better than a coin"),
            new Term("DLA (direct logit attribution)", "each component's output read straight through the "
                    + "unembedding: how much it adds to a token's logit by itself, without the layers after it"),
            new Term("ablation", "switching a component off to see what breaks: zero-ablation replaces its output "
                    + "by zeros, mean-ablation by its average over the evaluation batch"),
            new Term("recovered loss", "how much of the loss lost by a baseline (every position attending to "
                    + "itself) a replacement wins back: 100% matches the model, 0% is no better than the baseline, "
                    + "and below 0 is worse than the baseline"));

    /**
     * @param sections the analysis sections as analysis.json's tree (metrics, attention, circuits, attribution,
     *                 ablation, extraction, causal_validation, failure_modes); missing ones leave their claims out
     * @param extracted the trigram table read from the weights, or null when it could not be computed
     */
    public static List<Claim> of(AnalysisContext ctx, JsonNode sections, TrigramExtractor.Result extracted) {
        List<Claim> claims = new ArrayList<>();
        ModelConfig cfg = ctx.model().config();
        if (extracted != null && ctx.data() != null) {
            claims.add(attention(PrefixAttention.measure(ctx.model(), ctx.data(), extracted.prefixTable())));
        }
        qk(sections).ifPresent(claims::add);
        claims.add(readout(sections, cfg));
        necessity(sections, cfg).ifPresent(claims::add);
        learned(sections, cfg).ifPresent(claims::add);
        causal(sections).ifPresent(claims::add);
        failures(sections).ifPresent(claims::add);
        return claims;
    }

    // -------------------------------------------------------------------------------------------------------------
    // Attention: measured on the evaluation batch

    /**
     * The head's mean attention at positions p (1..T-2) where (tok[p-1], tok[p]) is a learned prefix, and elsewhere.
     *
     * @param head the layer-0 head attending most to the previous token at learned prefixes
     */
    record PrefixAttention(String head, int nLearnedPositions, int nOtherPositions, double prevAtLearned,
                           double selfAtLearned, double prevElsewhere, double selfElsewhere) {

        static PrefixAttention measure(HookedTransformer model, TrigramDataset data, boolean[] learnedPrefix) {
            String hook = HookNames.full("pattern", 0);
            HookedTransformer.Run run = model.runWithCache(data.tokens(), data.size(), data.seqLen(), hook::equals);
            return measure(run.cache().get(hook), data, learnedPrefix);
        }

        /** From layer 0's pattern [B, H, T, T] of the batch data.tokens(), computed by the caller. */
        static PrefixAttention measure(Tensor pattern, TrigramDataset data, boolean[] learnedPrefix) {
            int B = data.size(), T = data.seqLen(), V = data.dVocab(), H = pattern.dim(1);
            float[] pd = pattern.data();
            PrefixAttention best = null;
            for (int h = 0; h < H; h++) {
                double[] sum = new double[4];
                int nLearned = 0, nOther = 0;
                for (int s = 0; s < B; s++) {
                    for (int p = 1; p <= T - 2; p++) {
                        int row = ((s * H + h) * T + p) * T;
                        boolean learned = learnedPrefix[data.token(s, p - 1) * V + data.token(s, p)];
                        int k = learned ? 0 : 2;
                        sum[k] += pd[row + p - 1];
                        sum[k + 1] += pd[row + p];
                        if (learned) {
                            nLearned++;
                        } else {
                            nOther++;
                        }
                    }
                }
                PrefixAttention pa = new PrefixAttention("L0H" + h, nLearned, nOther, mean(sum[0], nLearned),
                        mean(sum[1], nLearned), mean(sum[2], nOther), mean(sum[3], nOther));
                if (best == null || pa.prevAtLearned > best.prevAtLearned) {
                    best = pa;
                }
            }
            return best;
        }

        private static double mean(double sum, int n) {
            return n == 0 ? Double.NaN : sum / n;
        }
    }

    static Claim attention(PrefixAttention pa) {
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("head", pa.head());
        ev.put("n_learned_prefix_positions", pa.nLearnedPositions());
        ev.put("n_other_positions", pa.nOtherPositions());
        ev.put("mean_attention_to_a_at_learned_prefixes", pa.prevAtLearned());
        ev.put("mean_attention_to_self_at_learned_prefixes", pa.selfAtLearned());
        ev.put("mean_attention_to_previous_elsewhere", pa.prevElsewhere());
        ev.put("mean_attention_to_self_elsewhere", pa.selfElsewhere());
        String text;
        if (pa.nLearnedPositions() == 0) {
            text = String.format(Locale.ROOT, "No learned prefix occurs in the evaluation batch, so there is no "
                    + "trigram position to attend from; elsewhere head %s puts %.2f of its attention on the current "
                    + "token and %.2f on the previous one.", pa.head(), pa.selfElsewhere(), pa.prevElsewhere());
        } else if (pa.prevAtLearned() > ATTENDS && pa.prevElsewhere() < ATTENDS / 2) {
            String elsewhere = pa.selfElsewhere() > ATTENDS
                    ? String.format(Locale.ROOT, "otherwise to b itself (%.2f on itself, %.2f on the previous "
                    + "token, at the other %,d positions)", pa.selfElsewhere(), pa.prevElsewhere(),
                    pa.nOtherPositions())
                    : String.format(Locale.ROOT, "otherwise it spreads its attention (%.2f on itself, %.2f on the "
                    + "previous token, at the other %,d positions)", pa.selfElsewhere(), pa.prevElsewhere(),
                    pa.nOtherPositions());
            text = String.format(Locale.ROOT, "At the second token b of a pair, head %s attends to the previous "
                            + "token a when (a, b) is a learned prefix (mean attention on a %.2f at those %,d "
                            + "positions), %s. Attending to a is how b's position learns which trigram it is in.",
                    pa.head(), pa.prevAtLearned(), pa.nLearnedPositions(), elsewhere);
        } else {
            text = String.format(Locale.ROOT, "Head %s does not single out learned prefixes: its mean attention on "
                            + "the previous token is %.2f at the %,d learned-prefix positions and %.2f at the other "
                            + "%,d, so attention alone does not tell a prefix from any other pair.", pa.head(),
                    pa.prevAtLearned(), pa.nLearnedPositions(), pa.prevElsewhere(), pa.nOtherPositions());
        }
        return new Claim("attention", text, ev, "attention-explorer");
    }

    // -------------------------------------------------------------------------------------------------------------
    // QK: which terms of the score carry the choice

    /** The QK components grouped the way a learner asks about them: by what the query and the key are made of. */
    static final Map<String, List<String>> QK_GROUPS = qkGroups();

    private static Map<String, List<String>> qkGroups() {
        Map<String, List<String>> g = new LinkedHashMap<>();
        g.put("token-token", List.of("token_token"));
        g.put("position-position", List.of("position_position"));
        g.put("token-position (cross)", List.of("query_token_key_position", "query_position_key_token"));
        g.put("bias", List.of("query_bias_key_token", "query_bias_key_position"));
        return g;
    }

    /**
     * Each group's share of the separation between prefixes and other pairs: |mean over prefixes - mean over other
     * pairs| of the group's terms, over the sum of those magnitudes. A term equal for every pair (the positional
     * ones) separates nothing, whatever its size.
     */
    static Map<String, Double> qkShares(JsonNode head) {
        Map<String, Double> diff = new LinkedHashMap<>();
        double total = 0;
        for (Map.Entry<String, List<String>> g : QK_GROUPS.entrySet()) {
            double d = 0;
            for (JsonNode c : head.path("components")) {
                if (g.getValue().contains(c.path("name").asText())) {
                    d += c.path("mean_prefix").asDouble() - c.path("mean_other").asDouble();
                }
            }
            diff.put(g.getKey(), Math.abs(d));
            total += Math.abs(d);
        }
        Map<String, Double> shares = new LinkedHashMap<>();
        for (Map.Entry<String, Double> e : diff.entrySet()) {
            shares.put(e.getKey(), total > 0 ? e.getValue() / total : Double.NaN);
        }
        return shares;
    }

    static java.util.Optional<Claim> qk(JsonNode sections) {
        JsonNode head = sections.at("/circuits/qk_circuit/heads/0");
        JsonNode sep = head.path("separation");
        if (head.isMissingNode() || sep.isMissingNode()) {
            return java.util.Optional.empty();
        }
        Map<String, Double> shares = qkShares(head);
        String top = shares.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse("");
        JsonNode byPosition = head.path("positional_advantage_by_position");
        // the typical positions: from 2 (the first with a background key) to the last one trained
        double posOffset = meanOver(byPosition, 2, byPosition.size() - 2);
        double auc = sep.path("auc").asDouble();
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("head", head.path("name").asText());
        ev.put("auc_dataset_prefixes", auc);
        ev.put("n_prefixes", sep.path("n_prefixes").asInt());
        ev.put("n_other_pairs", sep.path("n_other").asInt());
        ev.put("auc_learned_prefixes", sep.path("auc_learned").asDouble());
        ev.put("n_learned", sep.path("n_learned").asInt());
        ev.put("mean_advantage_learned", sep.path("mean_learned").asDouble());
        ev.put("mean_advantage_not_learned", sep.path("mean_not_learned").asDouble());
        ev.put("positional_advantage", posOffset);
        shares.forEach((k, v) -> ev.put("share_" + k.replaceAll("[^a-z]+", "_").replaceAll("_$", ""), v));
        StringBuilder shareText = new StringBuilder();
        shares.forEach((k, v) -> shareText.append(shareText.length() == 0 ? "" : ", ")
                .append(String.format(Locale.ROOT, "%s %.0f%%", k, 100 * v)));
        String quality = auc >= 0.95 ? "separates" : auc >= 0.75 ? "mostly separates" : "hardly separates";
        String positional = posOffset < 0
                ? String.format(Locale.ROOT, "on average they favour attending to the current token by %.2f, a "
                + "default that only a token-token score above it overturns", -posOffset)
                : String.format(Locale.ROOT, "on average they favour the previous token by %.2f, so the head leans "
                + "to a unless the tokens object", posOffset);
        int nLearned = sep.path("n_learned").asInt();
        String learned = nLearned == 0 ? "; the model has learned none of them"
                : String.format(Locale.ROOT, "; the %d prefixes the model has learned it separates from all others "
                        + "with AUC %.3f (mean advantage %+.2f, against %+.2f for the prefixes it has not learned)",
                nLearned, sep.path("auc_learned").asDouble(), sep.path("mean_learned").asDouble(),
                sep.path("mean_not_learned").asDouble());
        String text = String.format(Locale.ROOT, "The QK circuit decides where the head looks. The score advantage of "
                        + "a over b itself %s the dataset's %d prefixes from the %,d other pairs (AUC %.3f)%s. The %s "
                        + "terms carry %.0f%% of that separation (%s). The positional terms are the same for every "
                        + "pair: %s.", quality, sep.path("n_prefixes").asInt(), sep.path("n_other").asInt(), auc,
                learned, top, 100 * shares.getOrDefault(top, Double.NaN), shareText, positional);
        return java.util.Optional.of(new Claim("qk", text, ev, "qk"));
    }

    /** Mean of values[from..to] (inclusive), skipping what is missing; NaN when nothing is there. */
    static double meanOver(JsonNode values, int from, int to) {
        double sum = 0;
        int n = 0;
        for (int i = Math.max(0, from); i <= to && i < values.size(); i++) {
            if (values.get(i).isNumber()) {
                sum += values.get(i).asDouble();
                n++;
            }
        }
        return n == 0 ? Double.NaN : sum / n;
    }

    // -------------------------------------------------------------------------------------------------------------
    // OV, MLP and the logit of c

    static Claim readout(JsonNode sections, ModelConfig cfg) {
        JsonNode comps = sections.at("/attribution/components");
        double total = sections.at("/attribution/total_trigram").asDouble();
        Map<String, Double> byGroup = new LinkedHashMap<>();
        for (JsonNode c : comps) {
            String name = c.path("name").asText();
            String group = name.contains("mlp") ? "the MLP"
                    : name.matches("L\\d+H\\d+") ? (cfg.nHeads() > 1 ? "the attention heads" : "the attention head")
                    : name.contains("embed") ? "the embeddings" : "the biases";
            byGroup.merge(group, c.path("mean_trigram").asDouble(), Double::sum);
        }
        String top = byGroup.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey)
                .orElse("");
        JsonNode ov = sections.at("/circuits/ov_circuit/heads/0/trigram_direct_effect");
        Map<String, Object> ev = new LinkedHashMap<>();
        byGroup.forEach((k, v) -> ev.put("dla_" + k.replace("the ", "").replace(' ', '_'), v));
        ev.put("dla_total", total);
        ev.put("ov_mean_rank_of_c", ov.path("mean_rank").asDouble());
        ev.put("ov_chance_mean_rank", ov.path("chance_mean_rank").asDouble());
        StringBuilder split = new StringBuilder();
        byGroup.forEach((k, v) -> split.append(split.length() == 0 ? "" : ", ")
                .append(String.format(Locale.ROOT, "%s %+.2f", k.replace("the ", ""), v)));
        String dla = String.format(Locale.ROOT, "Direct logit attribution at the trigram positions shows who "
                + "writes c's logit: %s %s %+.2f of the %+.2f by which it beats the mean logit (%s).", top,
                top.endsWith("s") ? "add" : "adds",
                byGroup.getOrDefault(top, Double.NaN), total, split);
        String text = ov.isMissingNode() ? dla : String.format(Locale.ROOT, "The head's OV circuit copies a into b's "
                        + "residual stream. Read straight through the unembedding, that copy alone ranks c only %.1f "
                        + "of %d on average (chance %.1f): it is not yet c's logit. ", ov.path("mean_rank").asDouble(),
                cfg.dVocab(), ov.path("chance_mean_rank").asDouble()) + dla;
        return new Claim("readout", text, ev, "dla");
    }

    static java.util.Optional<Claim> necessity(JsonNode sections, ModelConfig cfg) {
        JsonNode abl = sections.path("ablation");
        if (abl.path("ablations").isMissingNode()) {
            return java.util.Optional.empty();
        }
        int clean = abl.at("/clean/trigram_n_correct").asInt();
        int n = abl.at("/clean/n_trigrams").asInt();
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("clean_trigram_n_correct", clean);
        ev.put("n_trigrams", n);
        Integer mlpZero = null, mlpMean = null, headZero = null, headMean = null;
        for (JsonNode a : abl.path("ablations")) {
            String target = a.path("target").asText(), mode = a.path("mode").asText();
            int v = a.at("/metrics/trigram_n_correct").asInt();
            if (target.contains("mlp") || target.matches("L\\d+H\\d+")) {
                ev.put(mode + "_ablated_" + (target.contains("mlp") ? "mlp" : target) + "_trigram_n_correct", v);
            }
            if (target.contains("mlp")) {
                if (mode.equals("zero")) {
                    mlpZero = v;
                } else {
                    mlpMean = v;
                }
            } else if (target.equals(firstHead(abl))) {
                if (mode.equals("zero")) {
                    headZero = v;
                } else {
                    headMean = v;
                }
            }
        }
        int headAfterMean = headMean == null ? (headZero == null ? -1 : headZero) : headMean;
        String text;
        if (cfg.attnOnly() || mlpZero == null) {
            text = String.format(Locale.ROOT, "The model has no MLP, so the head's OV output and the embeddings "
                    + "write c's logit by themselves: it gets %d of %d trigrams right.", clean, n);
            if (headZero != null) {
                text += String.format(Locale.ROOT, " Without the head it gets %d (zero-ablation) and %d "
                        + "(mean-ablation).", headZero, headAfterMean);
            }
        } else if (clean < n / 4.0) {
            text = String.format(Locale.ROOT, "The model gets only %d of %d trigrams right: too few to tell what the "
                    + "MLP and the head each contribute (ablating the MLP leaves %d, zero, and %d, mean).", clean, n,
                    mlpZero, mlpMean == null ? mlpZero : mlpMean);
        } else {
            int afterMean = mlpMean == null ? mlpZero : mlpMean;
            int best = Math.max(mlpZero, afterMean);
            String verdict = best < clean / 2.0 ? "The MLP is necessary"
                    : best < clean * 0.9 ? "The MLP helps but is not essential" : "The MLP is not needed";
            text = String.format(Locale.ROOT, "%s: ablating it takes the model from %d of %d trigrams right to %d "
                    + "(zero-ablation) and %d (mean-ablation).", verdict, clean, n, mlpZero, afterMean);
            if (headZero != null) {
                text += String.format(Locale.ROOT, " Ablating the head instead leaves %d (zero) and %d (mean).",
                        headZero, headAfterMean);
            }
        }
        return java.util.Optional.of(new Claim("necessity", text, ev, "ablation"));
    }

    /** The first head the ablation section ablates (its claims speak of one head, as the worklog does). */
    private static String firstHead(JsonNode abl) {
        for (JsonNode a : abl.path("ablations")) {
            if (a.path("target").asText().matches("L\\d+H\\d+")) {
                return a.path("target").asText();
            }
        }
        return "";
    }

    // -------------------------------------------------------------------------------------------------------------
    // The table read from the weights, the causal check, the failures

    static java.util.Optional<Claim> learned(JsonNode sections, ModelConfig cfg) {
        JsonNode ex = sections.path("extraction");
        JsonNode table = ex.path("table");
        if (table.isMissingNode()) {
            return java.util.Optional.empty();
        }
        int nExtracted = table.path("trigrams").size();
        JsonNode cut = table.path("cut");
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("n_extracted", nExtracted);
        ev.put("cut", cut.path("value").asDouble());
        ev.put("cut_gap_low", cut.path("gap_low").asDouble());
        ev.put("cut_gap_high", cut.path("gap_high").asDouble());
        ev.put("n_bigram_defaults", table.path("bigram_defaults").size());
        StringBuilder text = new StringBuilder(nExtracted == 0
                ? "Read from the weights alone (no data, no forward pass over a dataset), the model has learned no "
                + "trigram: no pair's prediction stands out from the uniform 1/d_vocab."
                : String.format(Locale.ROOT, "Read from the weights alone (no data, no forward pass over a dataset), "
                + "the model has learned %d trigram%s: those whose P(c) is above %.3f, the middle of the widest gap "
                + "between the confidences (%.3f to %.3f).", nExtracted, nExtracted == 1 ? "" : "s",
                cut.path("value").asDouble(), cut.path("gap_low").asDouble(), cut.path("gap_high").asDouble()));
        JsonNode eval = ex.path("evaluation");
        JsonNode rows = eval.path("dataset_trigrams");
        if (!rows.isMissingNode()) {
            int argmaxRight = eval.path("n_argmax_correct").asInt(), aDependent = eval.path("n_a_dependent").asInt();
            int extractedRight = eval.at("/vs_model/n_correct").asInt();
            // the argmax-correct trigrams the table leaves out: what they are made of
            int others = 0, othersDependent = 0, othersDefault = 0;
            double probC = 0, medianOther = 0;
            for (JsonNode r : rows) {
                if (r.path("argmax_correct").asBoolean() && !r.path("extracted").asBoolean()) {
                    others++;
                    othersDependent += r.path("a_dependent").asBoolean() ? 1 : 0;
                    othersDefault += r.path("bigram_default").asBoolean() ? 1 : 0;
                    probC += r.path("prob_c").asDouble();
                    medianOther += r.path("median_other_a").asDouble();
                }
            }
            ev.put("n_argmax_correct", argmaxRight);
            ev.put("n_a_dependent", aDependent);
            ev.put("n_extracted_among_argmax_correct", extractedRight);
            ev.put("n_argmax_correct_not_extracted", others);
            ev.put("n_not_extracted_a_dependent", othersDependent);
            ev.put("n_not_extracted_bigram_defaults", othersDefault);
            text.append(String.format(Locale.ROOT, " They are %d of the %d trigrams the model gets right by argmax, "
                    + "and %d of the %d whose prediction depends on a (P(c | a, b) more than twice its median over "
                    + "the other a').", extractedRight, argmaxRight, eval.at("/vs_model_a_dependent/n_correct").asInt(),
                    aDependent));
            if (others > 0) {
                probC /= others;
                medianOther /= others;
                ev.put("mean_prob_c_not_extracted", probC);
                ev.put("mean_median_other_a_not_extracted", medianOther);
                int independent = others - othersDependent;
                text.append(String.format(Locale.ROOT, " The other %d %s right by a small margin: the model gives "
                                + "their c %.3f on average (uniform %.3f), and %.3f after any other a'", others,
                        others == 1 ? "is" : "are", probC, 1.0 / cfg.dVocab(), medianOther));
                text.append(independent == others ? ", so a plays no part in them"
                        : String.format(Locale.ROOT, "; a plays no part in %d of them", independent));
                text.append(othersDefault == 0 ? "." : String.format(Locale.ROOT, ". %d of them are bigram "
                                + "defaults: b alone raises c a little (%s), enough to win the argmax on the "
                                + "all-trigrams batch.", othersDefault,
                        defaultRange(table.path("bigram_defaults"), cfg.dVocab())));
            }
        }
        return java.util.Optional.of(new Claim("learned", text.toString(), ev, "trigram-table"));
    }

    /** The bigram defaults' confidences as multiples of uniform, e.g. "1.3 to 2.0 times uniform". */
    private static String defaultRange(JsonNode defaults, int dVocab) {
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        for (JsonNode d : defaults) {
            lo = Math.min(lo, d.path("confidence").asDouble() * dVocab);
            hi = Math.max(hi, d.path("confidence").asDouble() * dVocab);
        }
        return String.format(Locale.ROOT, "%.1f to %.1f times uniform", lo, hi);
    }

    static java.util.Optional<Claim> causal(JsonNode sections) {
        JsonNode cv = sections.path("causal_validation");
        JsonNode rule = variant(cv, "rule_extracted");
        JsonNode base = variant(cv, cv.path("baseline").asText());
        // with no learned prefix the rule is the baseline itself: nothing to check
        if (rule == null || base == null || cv.path("n_extracted").asInt() == 0) {
            return java.util.Optional.empty();
        }
        double recLoss = rule.path("recovered_loss").asDouble();
        double recTri = rule.path("recovered_trigram_frac").asDouble();
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("recovered_loss", recLoss);
        ev.put("recovered_trigram_frac", recTri);
        ev.put("rule_loss", rule.at("/metrics/loss").asDouble());
        ev.put("baseline_loss", base.at("/metrics/loss").asDouble());
        ev.put("rule_trigram_n_correct", rule.at("/metrics/trigram_n_correct").asInt());
        ev.put("baseline_trigram_n_correct", base.at("/metrics/trigram_n_correct").asInt());
        String text = String.format(Locale.ROOT, "Causal check: replacing the head's attention by the extracted rule "
                        + "(attend to the previous token exactly at the %d learned prefixes, otherwise to the current "
                        + "token) %s and %s, against a baseline where every position attends to itself (%d right).",
                cv.path("n_extracted").asInt(), recovered("loss", recLoss, rule.at("/metrics/loss").asDouble(),
                        base.at("/metrics/loss").asDouble()),
                recoveredTrigrams(recTri, rule.at("/metrics/trigram_n_correct").asInt()),
                base.at("/metrics/trigram_n_correct").asInt());
        return java.util.Optional.of(new Claim("causal", text, ev, "causal"));
    }

    /** A recovered share in words; below 0 it is "worse than the baseline", which a percentage hides. */
    static String recovered(String what, double share, double value, double baseline) {
        if (!Double.isFinite(share)) {
            return String.format(Locale.ROOT, "gives a %s of %.4f (the baseline's is the model's, so there is no gap "
                    + "to recover)", what, value);
        }
        if (share < 0) {
            return String.format(Locale.ROOT, "does worse than the baseline on the %s (%.4f against %.4f)", what,
                    value, baseline);
        }
        return String.format(Locale.ROOT, "recovers %.1f%% of the %s (%.4f against the baseline's %.4f)",
                100 * share, what, value, baseline);
    }

    private static String recoveredTrigrams(double share, int nCorrect) {
        if (!Double.isFinite(share)) {
            return String.format(Locale.ROOT, "gets %d trigrams right", nCorrect);
        }
        return share < 0
                ? String.format(Locale.ROOT, "gets fewer trigrams right than the baseline (%d)", nCorrect)
                : String.format(Locale.ROOT, "%.1f%% of the trigram accuracy (%d right)", 100 * share, nCorrect);
    }

    static JsonNode variant(JsonNode causal, String name) {
        for (JsonNode v : causal.path("variants")) {
            if (v.path("name").asText().equals(name)) {
                return v;
            }
        }
        return null;
    }

    /** The causes of a missed trigram, as the failure catalogue names them, in words. */
    static final Map<String, String> CAUSES = Map.of(
            "REPEATED_TOKEN", "with a repeated token (a = b or b = c: the head must tell a from b by position alone)",
            "SHARED_SECOND_TOKEN", "whose b starts another trigram too, whose c the model predicts instead",
            "LOW_QK_ADVANTAGE", "that would be read correctly if the head attended to a, but QK does not select a",
            "SPLIT_ATTENTION", "where the head splits its attention between a and b, diluting the copy of a",
            "WRONG_READOUT", "where the head attends to a but the OV/MLP readout still picks another token",
            "NOT_LEARNED", "neither attended to nor read out: not learned");

    static java.util.Optional<Claim> failures(JsonNode sections) {
        JsonNode cat = sections.at("/failure_modes/catalogue");
        if (cat.isMissingNode()) {
            return java.util.Optional.empty();
        }
        int missed = cat.path("n_missed").asInt(), n = cat.path("n_trigrams").asInt();
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("n_missed", missed);
        ev.put("n_trigrams", n);
        StringBuilder text = new StringBuilder(missed == 0
                ? String.format(Locale.ROOT, "Where it fails: the model misses none of the %d trigrams", n)
                : String.format(Locale.ROOT, "Where it fails: the model misses %d of %d trigrams", missed, n));
        List<String> parts = new ArrayList<>();
        cat.path("counts").fields().forEachRemaining(e -> {
            int k = e.getValue().asInt();
            ev.put("missed_" + e.getKey().toLowerCase(Locale.ROOT), k);
            if (k > 0) {
                parts.add(String.format(Locale.ROOT, "%d %s", k, CAUSES.getOrDefault(e.getKey(),
                        e.getKey().toLowerCase(Locale.ROOT))));
            }
        });
        text.append(parts.isEmpty() ? "." : ": " + String.join("; ", parts) + ".");
        List<String> fooled = new ArrayList<>();
        for (JsonNode f : sections.at("/failure_modes/families")) {
            double rate = f.path("fooled_rate").asDouble(), control = f.path("control_fooled_rate").asDouble();
            ev.put("fooled_rate_" + f.path("name").asText(), rate);
            if (rate > control + 0.05) {
                fooled.add(String.format(Locale.ROOT, "%s (%s): fooled %.1f%% of the time, %.1f%% without the "
                        + "change", f.path("name").asText(), f.path("description").asText(), 100 * rate, 100 * control));
            }
        }
        text.append(fooled.isEmpty()
                ? " None of the adversarial input families fools it more than its control does."
                : " Inputs that fool it: " + String.join("; ", fooled) + ".");
        return java.util.Optional.of(new Claim("failures", text.toString(), ev, "failures"));
    }
}
