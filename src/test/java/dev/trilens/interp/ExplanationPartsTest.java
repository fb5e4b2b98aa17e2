package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.model.ModelConfig;
import org.junit.jupiter.api.Test;

/** Pieces of the explanation's wording on inputs written by hand. */
class ExplanationPartsTest {

    @Test
    void aNegativeRecoveredShareIsSaidInWords() {
        assertThat(Explanation.recovered("loss", -0.93, 4.4631, 4.3151))
                .isEqualTo("does worse than the baseline on the loss (4.4631 against 4.3151)");
        assertThat(Explanation.recovered("loss", 0.952, 4.1643, 4.3151))
                .isEqualTo("recovers 95.2% of the loss (4.1643 against the baseline's 4.3151)");
    }

    private static JsonNode json(String text) throws Exception {
        return new ObjectMapper().readTree(text.replace('\'', '"'));
    }

    /** An ablation section: the clean count of 100 trigrams, then the MLP's and head L0H0's zero and mean counts. */
    private static JsonNode ablation(int clean, int mlpZero, int mlpMean, int headZero, int headMean) throws Exception {
        return json(String.format("{'ablation': {'clean': {'trigram_n_correct': %d, 'n_trigrams': 100}, 'ablations': ["
                + "{'target': 'L0.mlp', 'mode': 'zero', 'metrics': {'trigram_n_correct': %d}},"
                + "{'target': 'L0.mlp', 'mode': 'mean', 'metrics': {'trigram_n_correct': %d}},"
                + "{'target': 'L0H0', 'mode': 'zero', 'metrics': {'trigram_n_correct': %d}},"
                + "{'target': 'L0H0', 'mode': 'mean', 'metrics': {'trigram_n_correct': %d}}]}}",
                clean, mlpZero, mlpMean, headZero, headMean));
    }

    @Test
    void theMlpVerdictFollowsTheBestAblatedCountAgainstHalfAndNineTenthsOfTheCleanOne() throws Exception {
        ModelConfig cfg = ModelConfig.arena();
        // clean 80: necessary below 40, helps below 72, else not needed; the better of zero and mean counts
        assertThat(Explanation.necessity(ablation(80, 10, 39, 3, 4), cfg).orElseThrow().text())
                .isEqualTo("The MLP is necessary: ablating it takes the model from 80 of 100 trigrams right to 10 "
                        + "(zero-ablation) and 39 (mean-ablation). Ablating the head instead leaves 3 (zero) and 4 "
                        + "(mean).");
        assertThat(Explanation.necessity(ablation(80, 40, 12, 3, 4), cfg).orElseThrow().text())
                .startsWith("The MLP helps but is not essential: ");
        assertThat(Explanation.necessity(ablation(80, 20, 71, 3, 4), cfg).orElseThrow().text())
                .startsWith("The MLP helps but is not essential: ");
        assertThat(Explanation.necessity(ablation(80, 72, 5, 3, 4), cfg).orElseThrow().text())
                .startsWith("The MLP is not needed: ");
        // fewer than a quarter right: no verdict
        assertThat(Explanation.necessity(ablation(24, 1, 2, 3, 4), cfg).orElseThrow().text())
                .isEqualTo("The model gets only 24 of 100 trigrams right: too few to tell what the MLP and the head "
                        + "each contribute (ablating the MLP leaves 1, zero, and 2, mean).");
        assertThat(Explanation.necessity(ablation(25, 1, 2, 3, 4), cfg).orElseThrow().text())
                .startsWith("The MLP is necessary");
        JsonNode ev = new ObjectMapper().valueToTree(Explanation.necessity(ablation(80, 10, 39, 3, 4), cfg)
                .orElseThrow().evidence());
        assertThat(ev.toString()).isEqualTo("{\"clean_trigram_n_correct\":80,\"n_trigrams\":100,"
                + "\"zero_ablated_mlp_trigram_n_correct\":10,\"mean_ablated_mlp_trigram_n_correct\":39,"
                + "\"zero_ablated_L0H0_trigram_n_correct\":3,\"mean_ablated_L0H0_trigram_n_correct\":4}");
        // an attention-only model: what the head alone does
        assertThat(Explanation.necessity(json("{'ablation': {'clean': {'trigram_n_correct': 60, 'n_trigrams': 100},"
                + "'ablations': [{'target': 'L0H0', 'mode': 'zero', 'metrics': {'trigram_n_correct': 2}}]}}"),
                ModelConfig.arena().withDMlp(0)).orElseThrow().text())
                .isEqualTo("The model has no MLP, so the head's OV output and the embeddings write c's logit by "
                        + "themselves: it gets 60 of 100 trigrams right. Without the head it gets 2 (zero-ablation) "
                        + "and 2 (mean-ablation).");
        assertThat(Explanation.necessity(json("{'metrics': {}}"), cfg)).isEmpty();
    }

    @Test
    void theFailuresClaimNamesEachCauseAndTheFamiliesThatFoolItMoreThanTheirControl() throws Exception {
        JsonNode sections = json("{'failure_modes': {'catalogue': {'n_missed': 5, 'n_trigrams': 100, 'counts': "
                + "{'REPEATED_TOKEN': 2, 'NOT_LEARNED': 0, 'SOMETHING_NEW': 3}}, 'families': ["
                + "{'name': 'near_miss', 'description': 'd1', 'fooled_rate': 0.30, 'control_fooled_rate': 0.20},"
                + "{'name': 'same_b', 'description': 'd2', 'fooled_rate': 0.251, 'control_fooled_rate': 0.20},"
                + "{'name': 'even', 'description': 'd3', 'fooled_rate': 0.25, 'control_fooled_rate': 0.25}]}}");
        Explanation.Claim c = Explanation.failures(sections).orElseThrow();
        assertThat(c.text()).isEqualTo("Where it fails: the model misses 5 of 100 trigrams: 2 "
                + Explanation.CAUSES.get("REPEATED_TOKEN") + "; 3 something_new. Inputs that fool it: near_miss (d1): "
                + "fooled 30.0% of the time, 20.0% without the change; same_b (d2): fooled 25.1% of the time, 20.0% "
                + "without the change.");
        assertThat(c.evidence()).containsEntry("missed_not_learned", 0).containsEntry("missed_something_new", 3)
                .containsEntry("fooled_rate_even", 0.25);
        Explanation.Claim none = Explanation.failures(json("{'failure_modes': {'catalogue': {'n_missed': 0, "
                + "'n_trigrams': 7, 'counts': {'NOT_LEARNED': 0}}, 'families': [{'name': 'x', 'description': 'y', "
                + "'fooled_rate': 0.1, 'control_fooled_rate': 0.06}]}}")).orElseThrow();
        assertThat(none.text()).isEqualTo("Where it fails: the model misses none of the 7 trigrams. None of the "
                + "adversarial input families fools it more than its control does.");
        assertThat(Explanation.failures(json("{}"))).isEmpty();
    }

    private static JsonNode qkSections(double auc, int nLearned, String advantageByPosition) throws Exception {
        // separation by group: token-token 3 - 1 = 2; position-position 0; cross (1 - 0.5) + (0.5 - 0) = 1;
        // bias |0 - 1| = 1: shares 50%, 0%, 25%, 25%
        return json("{'circuits': {'qk_circuit': {'heads': [{'name': 'L0H0', 'components': ["
                + "{'name': 'token_token', 'mean_prefix': 3, 'mean_other': 1},"
                + "{'name': 'position_position', 'mean_prefix': 5, 'mean_other': 5},"
                + "{'name': 'query_token_key_position', 'mean_prefix': 1, 'mean_other': 0.5},"
                + "{'name': 'query_position_key_token', 'mean_prefix': 0.5, 'mean_other': 0},"
                + "{'name': 'query_bias_key_token', 'mean_prefix': 0, 'mean_other': 1},"
                + "{'name': 'query_bias_key_position', 'mean_prefix': 0, 'mean_other': 0}],"
                + "'positional_advantage_by_position': " + advantageByPosition + ","
                + "'separation': {'auc': " + auc + ", 'n_prefixes': 10, 'n_other': 1000, 'auc_learned': 0.99, "
                + "'n_learned': " + nLearned + ", 'mean_learned': 1.5, 'mean_not_learned': -0.25}}]}}}");
    }

    @Test
    void theQkClaimWeighsEachGroupOfTermsByHowMuchItSeparatesPrefixes() throws Exception {
        // the typical positions are 2 .. size - 2: (-1 - 2 - 3) / 3 = -2 (the first two and the last are left out)
        Explanation.Claim c = Explanation.qk(qkSections(0.95, 8, "[9, 9, -1, -2, -3, 9]")).orElseThrow();
        assertThat(c.text()).isEqualTo("The QK circuit decides where the head looks. The score advantage of a over b "
                + "itself separates the dataset's 10 prefixes from the 1,000 other pairs (AUC 0.950); the 8 prefixes "
                + "the model has learned it separates from all others with AUC 0.990 (mean advantage +1.50, against "
                + "-0.25 for the prefixes it has not learned). The token-token terms carry 50% of that separation "
                + "(token-token 50%, position-position 0%, token-position (cross) 25%, bias 25%). The positional "
                + "terms are the same for every pair: on average they favour attending to the current token by 2.00, "
                + "a default that only a token-token score above it overturns.");
        assertThat(c.evidence()).containsEntry("positional_advantage", -2.0).containsEntry("share_token_token", 0.5)
                .containsEntry("share_token_position_cross", 0.25).containsEntry("share_bias", 0.25);
        assertThat(Explanation.qk(qkSections(0.9499, 0, "[0, 0, 1, 2, 3, 0]")).orElseThrow().text())
                .contains("itself mostly separates").contains("(AUC 0.950); the model has learned none of them.")
                .contains("on average they favour the previous token by 2.00, so the head leans to a");
        assertThat(Explanation.qk(qkSections(0.75, 1, "[0, 0, 0, 0]")).orElseThrow().text())
                .contains("itself mostly separates");
        assertThat(Explanation.qk(qkSections(0.7499, 1, "[0, 0, 0, 0]")).orElseThrow().text())
                .contains("itself hardly separates");
        assertThat(Explanation.meanOver(json("[1, 'x', 3, 5]"), 1, 9)).isEqualTo(4.0);
        assertThat(Explanation.meanOver(json("[1, 2]"), 2, 5)).isNaN();
        assertThat(Explanation.qk(json("{'circuits': {}}"))).isEmpty();
    }

    private static JsonNode readoutSections(double mlp, boolean withOv) throws Exception {
        return json("{'attribution': {'total_trigram': 33.4, 'components': ["
                + "{'name': 'embed', 'mean_trigram': 1.0}, {'name': 'pos_embed', 'mean_trigram': 0.5},"
                + "{'name': 'L0H0', 'mean_trigram': 2.0}, {'name': 'L0.b_O', 'mean_trigram': 0.1},"
                + "{'name': 'L0.mlp_out', 'mean_trigram': " + mlp + "}, {'name': 'b_U', 'mean_trigram': -0.2}]}"
                + (withOv ? ", 'circuits': {'ov_circuit': {'heads': [{'trigram_direct_effect': "
                + "{'mean_rank': 12.3, 'chance_mean_rank': 38.0}}]}}" : "") + "}");
    }

    @Test
    void theReadoutClaimNamesTheGroupThatWritesMostOfCsLogit() throws Exception {
        ModelConfig cfg = ModelConfig.arena();
        Explanation.Claim c = Explanation.readout(readoutSections(30, true), cfg);
        assertThat(c.text()).isEqualTo("The head's OV circuit copies a into b's residual stream. Read straight "
                + "through the unembedding, that copy alone ranks c only 12.3 of 75 on average (chance 38.0): it is "
                + "not yet c's logit. Direct logit attribution at the trigram positions shows who writes c's logit: "
                + "the MLP adds +30.00 of the +33.40 by which it beats the mean logit (embeddings +1.50, attention "
                + "head +2.00, biases -0.10, MLP +30.00).");
        assertThat(c.evidence()).containsEntry("dla_embeddings", 1.5).containsEntry("dla_MLP", 30.0)
                .containsEntry("dla_total", 33.4).containsEntry("ov_mean_rank_of_c", 12.3);
        assertThat(Explanation.readout(readoutSections(0.2, false), cfg).text()).isEqualTo("Direct logit "
                + "attribution at the trigram positions shows who writes c's logit: the attention head adds +2.00 of "
                + "the +33.40 by which it beats the mean logit (embeddings +1.50, attention head +2.00, biases -0.10, "
                + "MLP +0.20).");
        ModelConfig twoHeads = new ModelConfig(75, 50, 32, 1, 2, 16, 20, false);
        assertThat(Explanation.readout(readoutSections(-5, false), twoHeads).text())
                .contains("the attention heads add +2.00 of");
    }

    @Test
    void theLearnedClaimDescribesTheArgmaxRightTrigramsTheTableLeavesOut() throws Exception {
        // three argmax-right trigrams left out: two a-dependent, one a bigram default; their P(c) 0.02, 0.04, 0.06
        // (mean 0.04) and median over other a' 0.01, 0.02, 0.03 (mean 0.02); bigram defaults at 0.02 and 0.03 of
        // V = 75: 1.5 and 2.25 times uniform
        JsonNode sections = json("{'extraction': {'table': {'trigrams': [[1, 2, 3], [4, 5, 6]], 'cut': {'value': 0.45, "
                + "'gap_low': 0.1, 'gap_high': 0.8}, 'bigram_defaults': [{'confidence': 0.02}, {'confidence': 0.03}]},"
                + "'evaluation': {'n_argmax_correct': 5, 'n_a_dependent': 4, 'vs_model': {'n_correct': 2},"
                + "'vs_model_a_dependent': {'n_correct': 2}, 'dataset_trigrams': ["
                + "{'argmax_correct': true, 'extracted': true, 'a_dependent': true, 'prob_c': 0.9, 'median_other_a': 0},"
                + "{'argmax_correct': true, 'extracted': false, 'a_dependent': true, 'bigram_default': false, "
                + "'prob_c': 0.02, 'median_other_a': 0.01},"
                + "{'argmax_correct': true, 'extracted': false, 'a_dependent': true, 'bigram_default': false, "
                + "'prob_c': 0.04, 'median_other_a': 0.02},"
                + "{'argmax_correct': true, 'extracted': false, 'a_dependent': false, 'bigram_default': true, "
                + "'prob_c': 0.06, 'median_other_a': 0.03},"
                + "{'argmax_correct': false, 'extracted': false, 'a_dependent': true, 'prob_c': 0.5, "
                + "'median_other_a': 0.5}]}}}");
        Explanation.Claim c = Explanation.learned(sections, ModelConfig.arena()).orElseThrow();
        assertThat(c.text()).isEqualTo("Read from the weights alone (no data, no forward pass over a dataset), the model "
                + "has learned 2 trigrams: those whose P(c) is above 0.450, the middle of the widest gap between the "
                + "confidences (0.100 to 0.800). They are 2 of the 5 trigrams the model gets right by argmax, and 2 of "
                + "the 4 whose prediction depends on a (P(c | a, b) more than twice its median over the other a'). "
                + "The other 3 are right by a small margin: the model gives their c 0.040 on average (uniform "
                + "0.013), and 0.020 after any other a'; a plays no part in 1 of them. 1 of them are bigram defaults: "
                + "b alone raises c a little (1.5 to 2.3 times uniform), enough to win the argmax on the all-trigrams "
                + "batch.");
        assertThat(c.evidence()).containsEntry("n_argmax_correct_not_extracted", 3)
                .containsEntry("n_not_extracted_a_dependent", 2).containsEntry("n_not_extracted_bigram_defaults", 1);
        assertThat((double) c.evidence().get("mean_prob_c_not_extracted")).isCloseTo(0.04, within(1e-12));
        assertThat((double) c.evidence().get("mean_median_other_a_not_extracted")).isCloseTo(0.02, within(1e-12));
        // one trigram, none left out
        JsonNode one = json("{'extraction': {'table': {'trigrams': [[1, 2, 3]], 'cut': {'value': 0.5, 'gap_low': 0.2, "
                + "'gap_high': 0.8}, 'bigram_defaults': []}}}");
        assertThat(Explanation.learned(one, ModelConfig.arena()).orElseThrow().text()).isEqualTo("Read from the "
                + "weights alone (no data, no forward pass over a dataset), the model has learned 1 trigram: those "
                + "whose P(c) is above 0.500, the middle of the widest gap between the confidences (0.200 to 0.800).");
        assertThat(Explanation.learned(json("{}"), ModelConfig.arena())).isEmpty();
    }
}
