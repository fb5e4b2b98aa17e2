package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

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
}
