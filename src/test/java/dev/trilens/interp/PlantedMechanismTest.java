package dev.trilens.interp;

import static dev.trilens.interp.PlantedModels.attnElsewhere;
import static dev.trilens.interp.PlantedModels.attnPlanted;
import static dev.trilens.interp.PlantedModels.softmaxOne;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.PlantedModels.Planted;
import dev.trilens.model.HookedTransformer;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The dataset-level analyses on a hand-built model that knows exactly the trigrams of a generated dataset: the
 * dataset's own table is planted with the MLP readout ({@link PlantedModels#withMlp}), which takes any table without
 * a = b. Expected values follow from the construction (derivations in the comments), not from trilens's output.
 *
 * <p>Facts used throughout, with w = 1/(1+e^-6) and w' = 1/(1+e^6): at a position p whose (tok[p-1], tok[p]) is
 * planted the head puts w on p-1 and 1 - w on p; anywhere else w' on p-1 and 1 - w' on p; keys before p-1 get
 * under e^-28 of the mass. The neuron of (a, b) fires only when the copied a (weight w or 1) and the current b are
 * both present, so a planted position gets logit L (2 attn - 1) on c and 0 on every other token, and every other
 * position has all logits exactly 0 (uniform, P = 1/V).
 */
class PlantedMechanismTest {

    static final int V = 12, T = 16;
    static final double L = 10;
    static TrigramDataset data;
    static List<Planted> table;
    static HookedTransformer model;
    static TrigramExtractor.Result extracted;

    /**
     * Seed 2 draws (0,3)->5, (0,2)->3, (6,7)->8, (3,6)->1, (11,7)->9, (2,0)->4, (0,1)->11, (7,6)->4: a = 0 starts
     * three prefixes with three different c, b = 7 and b = 6 end two each, and 3, 7, 2 and 0 are both an a and a b,
     * so every pair sharing a token with a prefix is a distractor the readout must not confuse.
     */
    @BeforeAll
    static void build() {
        data = TrigramDataset.withTrigramCount(V, T, 8, 2, 100);
        table = new ArrayList<>();
        for (int[] t : data.trigrams()) {
            table.add(new Planted(t[0], t[1], t[2], L));
        }
        model = new HookedTransformer(PlantedModels.withMlp(V, T, table));
        extracted = TrigramExtractor.extract(model.weights());
    }

    @Test
    void extractionIsTheDatasetsTable() {
        assertThat(table).hasSize(8);
        assertThat(table.get(0)).isEqualTo(new Planted(0, 3, 5, L));
        PlantedExtractionTest.assertExactly(extracted, table);
        assertThat(extracted.bigramDefaults()).isEmpty();
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(extracted, model, data);
        assertThat(ev.vsDataset().precision()).isEqualTo(1.0);
        assertThat(ev.vsDataset().recall()).isEqualTo(1.0);
    }

    @Test
    void cleanMetricsAndHeadZeroAblation() {
        // the trigram batch is [a, b, c] sequences: at p = 1 the two keys are a (score 12) and b (6), so P(c) is
        // softmaxOne(L (2w - 1)) = softmaxOne(9.9505) = 0.99947 for every trigram, all argmax-correct
        EvalMetrics clean = Metrics.evaluate(model, data);
        double pPlanted = softmaxOne(L * (2 * attnPlanted() - 1), V);
        assertThat(pPlanted).isCloseTo(0.99947, within(1e-5));
        assertThat(clean.trigramFracCorrect()).isEqualTo(1.0);
        assertThat(clean.trigramNCorrect()).isEqualTo(table.size());
        assertThat(clean.trigramAvgCorrectProb()).isCloseTo(pPlanted, within(1e-5));

        // zero-ablating the head removes the copied a, so no neuron fires (K * 1 - 1.5 K < 0) and every logit of
        // every position is 0: loss ln 12 = 2.484907 and P(correct) = 1/12 everywhere, trigrams included
        Ablation.Target head = Ablation.targets(model.config()).get(0);
        assertThat(head.name()).isEqualTo("L0H0");
        EvalMetrics ablated = Ablation.evaluate(model, data, head, Ablation.Mode.ZERO, null);
        assertThat(ablated.loss()).isCloseTo(Math.log(V), within(1e-5));
        assertThat(ablated.trigramAvgCorrectProb()).isCloseTo(1.0 / V, within(1e-6));
        assertThat(ablated.meanCorrectProb()).isCloseTo(1.0 / V, within(1e-6));
        assertThat(ablated.minCorrectProb()).isCloseTo(1.0 / V, within(1e-6));
        // so does zero-ablating the MLP, which alone writes the c logits
        Ablation.Target mlp = Ablation.targets(model.config()).get(1);
        assertThat(mlp.name()).isEqualTo("L0.mlp_out");
        assertThat(Ablation.evaluate(model, data, mlp, Ablation.Mode.ZERO, null).loss())
                .isCloseTo(Math.log(V), within(1e-5));

        // with every logit 0 the argmax is token 0 (the first, as torch's) and no c of this table is 0, so both
        // ablations leave 0 of 8 trigrams right: the MLP is necessary, and so is the head
        Ablation abl = Ablation.compute(new AnalysisContext(model, data), List.of(head, mlp),
                List.of(Ablation.Mode.ZERO));
        ObjectNode sections = Analysis.mapper().createObjectNode();
        sections.set("ablation", Analysis.mapper().valueToTree(abl));
        Explanation.Claim necessity = Explanation.necessity(sections, model.config()).orElseThrow();
        assertThat(necessity.text()).isEqualTo("The MLP is necessary: ablating it takes the model from 8 of 8 "
                + "trigrams right to 0 (zero-ablation) and 0 (mean-ablation). Ablating the head instead leaves 0 "
                + "(zero) and 0 (mean).");
        Worklog.Answer mlpNeeded = Worklog.mlpNeeded(model.config(), sections, Worklog.Inputs.none());
        assertThat(mlpNeeded.verdict()).startsWith("Yes, the MLP is needed (the worklog guessed it was not): "
                + "ablating it takes the model from 8 of 8 trigrams right to 0 (zero-ablation) and 0 "
                + "(mean-ablation).");
    }

    @Test
    void attentionSwapOntoAPlantedAPredictsItsC() {
        // [a, z, b] with (z, b) not planted: at p = 2 the head stays on b (1 - w' = 0.99753, and e^-28 on a),
        // nothing fires and the prediction is uniform; moving the attention onto position 0 copies a with weight
        // 1, the neuron of (a, b) gets K (1 + 1) - 1.5 K = 0.5 K and writes L on c: P(c) = softmaxOne(10) = 0.99950
        Planted t = null;
        int z = -1;
        for (Planted cand : table) {
            for (int y = 0; y < V && t == null; y++) {
                if (y != cand.a() && data.completionOf(y, cand.b()) < 0 && cand.c() != 0) {
                    t = cand;
                    z = y;
                }
            }
        }
        assertThat(t).as("a planted trigram with c != 0 and an unplanted (z, b)").isNotNull();
        Patching.SwapResult s = Patching.attentionSwap(model, new int[] {t.a(), z, t.b()}, 2, 0);
        assertThat(s.attentionToSelfBefore()[0][0]).isCloseTo(1 - attnElsewhere(), within(1e-5));
        assertThat(s.attentionToPreviousBefore()[0][0]).isCloseTo(attnElsewhere(), within(1e-5));
        assertThat(s.attentionToNewKeyBefore()[0][0]).isLessThan(1e-9);
        assertThat(s.before().prob()).isCloseTo(1.0 / V, within(1e-6));
        assertThat(s.after().token()).isEqualTo(t.c());
        assertThat(s.after().prob()).isCloseTo(softmaxOne(L, V), within(1e-5));
        assertThat(softmaxOne(L, V)).isCloseTo(0.99950, within(1e-5));
    }

    @Test
    void setTestAndExplanationAttentionClaim() {
        // every position 1..T-2 whose pair is planted is followed by its c (the dataset forces it): attention on
        // p-1 is w > 0.2 there and w' < 0.2 elsewhere, P(correct) is 0.99947 there and 1/12 < 0.2 elsewhere, so
        // the three sets (attending, predicted, completing a trigram) are the same positions
        int nPlanted = 0;
        for (int s = 0; s < data.size(); s++) {
            for (int p = 1; p <= T - 2; p++) {
                nPlanted += data.completionOf(data.token(s, p - 1), data.token(s, p)) >= 0 ? 1 : 0;
            }
        }
        int nOther = data.size() * (T - 2) - nPlanted;
        assertThat(nPlanted).isGreaterThan(30);
        AnalysisContext ctx = new AnalysisContext(model, data);
        ObjectNode sections = Analysis.mapper().createObjectNode();
        sections.set("attention", Analysis.mapper().valueToTree(AttentionAnalysis.compute(ctx)));
        Worklog.Answer set = Worklog.setTest(sections);
        assertThat(set.evidence()).containsEntry("n_attending", nPlanted).containsEntry("n_predicted", nPlanted)
                .containsEntry("n_both", nPlanted).containsEntry("equal_to_predicted", true)
                .containsEntry("n_completing_a_trigram", nPlanted).containsEntry("equal_to_completing", true);
        assertThat(set.verdict()).startsWith(String.format(Locale.ROOT, "Yes: the positions where the head's "
                + "attention to the previous token is above 0.20 and those where the model gives the correct next "
                + "token more than 0.20 are the same %,d positions.", nPlanted))
                .endsWith("They are also exactly the positions whose next token completes a trigram.");

        Explanation.Claim claim = Explanation.attention(
                Explanation.PrefixAttention.measure(model, data, extracted.prefixTable()));
        assertThat(claim.evidence()).containsEntry("head", "L0H0")
                .containsEntry("n_learned_prefix_positions", nPlanted).containsEntry("n_other_positions", nOther);
        assertThat((double) claim.evidence().get("mean_attention_to_a_at_learned_prefixes"))
                .isCloseTo(attnPlanted(), within(1e-5));
        assertThat((double) claim.evidence().get("mean_attention_to_self_at_learned_prefixes"))
                .isCloseTo(1 - attnPlanted(), within(1e-5));
        assertThat((double) claim.evidence().get("mean_attention_to_previous_elsewhere"))
                .isCloseTo(attnElsewhere(), within(1e-5));
        assertThat((double) claim.evidence().get("mean_attention_to_self_elsewhere"))
                .isCloseTo(1 - attnElsewhere(), within(1e-5));
        assertThat(claim.text()).contains(String.format(Locale.ROOT, "head L0H0 attends to the previous token a "
                + "when (a, b) is a learned prefix (mean attention on a 1.00 at those %,d positions), otherwise to b "
                + "itself (1.00 on itself, 0.00 on the previous token, at the other %,d positions)", nPlanted,
                nOther));
    }

    @Test
    void causalValidationRecoversTheModel() {
        CausalValidation.Result r = CausalValidation.run(model, data, extracted);
        // the head's attention on p-1 exceeds 0.5 (w) exactly at planted prefixes and is w' elsewhere
        assertThat(r.ruleAgreement()).isEqualTo(1.0);
        assertThat(r.ruleAgreementDataset()).isEqualTo(1.0);
        assertThat(r.ruleHeads()).containsExactly(0);
        // the baseline (every position on itself) fires nothing: P(c) = 1/12 for every trigram; the rule puts
        // weight 1 on a, so P(c) = softmaxOne(L) where the model has softmaxOne(L (2w - 1)): it recovers
        // (softmaxOne(L) - 1/12) / (softmaxOne(L (2w - 1)) - 1/12) = 1.00004 of the trigram probability and every
        // trigram the model gets right
        double clean = softmaxOne(L * (2 * attnPlanted() - 1), V), rule = softmaxOne(L, V);
        double recovered = (rule - 1.0 / V) / (clean - 1.0 / V);
        for (String name : List.of("rule_extracted", "rule_dataset", "rule_prefix_only")) {
            CausalValidation.Variant v = r.variant(name);
            assertThat(v.metrics().trigramAvgCorrectProb()).as(name).isCloseTo(rule, within(1e-5));
            assertThat(v.recoveredTrigramProb()).as(name).isCloseTo(recovered, within(1e-4));
            assertThat(v.recoveredTrigramFrac()).as(name).isEqualTo(1.0);
            // the rule only moves the planted positions' P(c) from 0.99947 to 0.99950 (-log P by 3e-5) and leaves
            // every other position uniform, against a baseline-to-clean gap of about 2: recovered loss 1 + ~1e-6
            assertThat(v.recoveredLoss()).as(name).isCloseTo(1.0, within(1e-4));
        }
        CausalValidation.Variant base = r.variant(CausalValidation.BASELINE);
        assertThat(base.metrics().loss()).isCloseTo(Math.log(V), within(1e-5));
        assertThat(base.metrics().trigramAvgCorrectProb()).isCloseTo(1.0 / V, within(1e-6));
        // the baseline's logits are all exactly 0, so its argmax is token 0 (the first, as torch's) and no c of
        // this table is 0: it gets 0 of the 8 trigrams right, the rule all 8
        assertThat(base.metrics().trigramNCorrect()).isZero();

        ObjectNode sections = Analysis.mapper().createObjectNode();
        sections.set("causal_validation", Analysis.mapper().valueToTree(r));
        Explanation.Claim claim = Explanation.causal(sections).orElseThrow();
        assertThat(claim.evidence()).containsEntry("recovered_trigram_frac", 1.0)
                .containsEntry("rule_trigram_n_correct", 8).containsEntry("baseline_trigram_n_correct", 0);
        assertThat((double) claim.evidence().get("recovered_loss")).isCloseTo(1.0, within(1e-4));
        assertThat((double) claim.evidence().get("baseline_loss")).isCloseTo(Math.log(V), within(1e-5));
        assertThat(claim.text()).contains("exactly at the 8 learned prefixes", "recovers 100.0% of the loss",
                "against the baseline's 2.4849)", "100.0% of the trigram accuracy (8 right)",
                "attends to itself (0 right)");
    }
}
