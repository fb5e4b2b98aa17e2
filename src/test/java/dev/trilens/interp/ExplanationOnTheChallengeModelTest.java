package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import org.junit.jupiter.api.Test;

/** The explanation and the worklog's verdicts on the published model (skipped where the fixture is absent). */
class ExplanationOnTheChallengeModelTest {

    @Test
    void onTheChallengeModelEveryClaimIsTheMechanism() {
        Weights w = TrigramExtractorTestModels.challenge();
        ModelConfig c = w.cfg;
        TrigramDataset ds = TrigramExtractorTestModels.challengeData(400);
        Analysis a = Analysis.run(new AnalysisContext(new HookedTransformer(w), ds), s -> { });
        JsonNode json = Analysis.mapper().valueToTree(a.toJson("challenge", c, ds));

        JsonNode att = ExplanationTest.claim(json, "attention");
        assertThat(att.path("text").asText()).startsWith("At the second token b of a pair, head L0H0 attends to the "
                + "previous token a when (a, b) is a learned prefix").contains("otherwise to b itself");
        assertThat(att.at("/evidence/mean_attention_to_a_at_learned_prefixes").asDouble()).isGreaterThan(0.5);
        assertThat(att.at("/evidence/mean_attention_to_self_elsewhere").asDouble()).isGreaterThan(0.9);
        JsonNode qk = ExplanationTest.claim(json, "qk");
        assertThat(qk.at("/evidence/share_token_token").asDouble()).isGreaterThan(0.9);
        assertThat(qk.path("text").asText()).contains("The token-token terms carry")
                .contains("favour attending to the current token");
        // the MLP zero-ablated: 266 -> 50 on the all-trigrams batch; its mean depends on the batch's size (69 at 2500)
        JsonNode nec = ExplanationTest.claim(json, "necessity");
        int mean = nec.at("/evidence/mean_ablated_mlp_trigram_n_correct").asInt();
        assertThat(mean).isBetween(1, 266 / 2);
        assertThat(nec.path("text").asText()).startsWith("The MLP is necessary: ablating it takes the model from "
                + "266 of 277 trigrams right to 50 (zero-ablation) and " + mean + " (mean-ablation)");
        assertThat(ExplanationTest.claim(json, "readout").path("text").asText()).contains("the MLP adds");
        assertThat(ExplanationTest.claim(json, "causal").at("/evidence/recovered_loss").asDouble()).isGreaterThan(0.9);
        // why 266 correct but 221 learned: the other 45 do not depend on a, and most are bigram defaults
        JsonNode learned = ExplanationTest.claim(json, "learned");
        JsonNode lev = learned.path("evidence");
        assertThat(lev.path("n_extracted").asInt()).isEqualTo(221);
        assertThat(lev.path("n_argmax_correct_not_extracted").asInt()).isEqualTo(266 - 221);
        assertThat(lev.path("n_not_extracted_a_dependent").asInt()).isZero();
        int defaults = lev.path("n_not_extracted_bigram_defaults").asInt();
        assertThat(defaults).isPositive();
        assertThat(learned.path("text").asText()).contains("learned 221 trigrams").contains("The other 45 are right")
                .contains("a plays no part in them").contains(defaults + " of them are bigram defaults");

        assertThat(ExplanationTest.answer(json, "set_test").path("verdict").asText()).startsWith("Yes: the positions");
        assertThat(ExplanationTest.answer(json, "mlp_needed").path("verdict").asText()).startsWith("Yes, the MLP is needed");
        JsonNode fin = ExplanationTest.answer(json, "final_position");
        assertThat(fin.path("verdict").asText()).startsWith("Yes, the worklog's guess holds");
        assertThat(fin.at("/evidence/median_cosine_of_trained_neighbours").asDouble()).isGreaterThan(0.9);
        assertThat(ExplanationTest.answer(json, "qk_nature").path("verdict").asText()).startsWith("Token-based")
                .contains("do have a rotation-like geometry");
    }
}
