package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class FailureModesTest {

    private static void assertConsistent(MissCatalogue.Catalogue cat, HookedTransformer model, TrigramDataset data) {
        int correct = Metrics.trigramScore(model, data).nCorrect();
        assertThat(cat.nTrigrams()).isEqualTo(data.nTrigrams());
        assertThat(cat.nMissed()).isEqualTo(data.nTrigrams() - correct).isEqualTo(cat.missed().size());
        assertThat(cat.counts().values().stream().mapToInt(Integer::intValue).sum()).isEqualTo(cat.nMissed());
        for (MissCatalogue.Miss m : cat.missed()) {
            assertThat(m.predicted()).isNotEqualTo(m.c());
            assertThat(data.completionOf(m.a(), m.b())).isEqualTo(m.c());
            assertThat(m.probPredicted()).isGreaterThanOrEqualTo(m.probC());
            switch (m.cause()) {
                case REPEATED_TOKEN -> assertThat(m.a() == m.b() || m.b() == m.c()).isTrue();
                case SHARED_SECOND_TOKEN -> assertThat(Arrays.asList(m.siblings())).anySatisfy(s -> {
                    assertThat(s[1]).isEqualTo(m.b());
                    assertThat(s[2]).isEqualTo(m.predicted());
                });
                case LOW_QK_ADVANTAGE -> assertThat(m.attnPrev()).isLessThan(MissCatalogue.ATTENTION_THRESHOLD);
                case SPLIT_ATTENTION, WRONG_READOUT ->
                        assertThat(m.attnPrev()).isGreaterThanOrEqualTo(MissCatalogue.ATTENTION_THRESHOLD);
                case NOT_LEARNED -> assertThat(m.fullAttentionPredicts()).isNotEqualTo(m.c());
                default -> throw new AssertionError(m.cause());
            }
        }
        int flagged = 0;
        for (MissCatalogue.Miss m : cat.missed()) {
            flagged += m.flags().contains("low_attention") ? 1 : 0;
        }
        assertThat(cat.flagCounts().get("low_attention")).isEqualTo(flagged);
    }

    @Test
    void cataloguesTheChallengeModelsMisses() throws Exception {
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        TrigramDataset data = TrigramExtractorTestModels.challengeData(1);
        MissCatalogue.Catalogue cat = MissCatalogue.catalogue(model, data);
        assertConsistent(cat, model, data);
        // measured: 11 missed, (12, 12, 4) for its repeated token and 10 that predict the c' of a trigram sharing
        // their b; none of the 11 is attended (the model never learned them)
        assertThat(cat.nMissed()).isEqualTo(11);
        assertThat(cat.counts().get(MissCatalogue.Cause.REPEATED_TOKEN)).isEqualTo(1);
        assertThat(cat.counts().get(MissCatalogue.Cause.SHARED_SECOND_TOKEN)).isEqualTo(10);
        assertThat(cat.flagCounts().get("low_attention")).isEqualTo(11);
        // as analysis.json has it (the keys schema/analysis.schema.json documents)
        JsonNode json = Analysis.mapper().valueToTree(cat);
        assertThat(json.get("counts").get("SHARED_SECOND_TOKEN").intValue()).isEqualTo(10);
        assertThat(json.get("missed").get(0).get("cause").asText()).isEqualTo("REPEATED_TOKEN");
        assertThat(json.has("shares_brate_attending")).isTrue();
    }

    @Test
    void adversarialFamiliesOnTheChallengeModel() {
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        TrigramDataset data = TrigramExtractorTestModels.challengeData(1);
        TrigramExtractor.Result r = TrigramExtractorTestModels.challengeExtraction();
        List<AdversarialFamilies.Family> fams = AdversarialFamilies.adversarial(model, data, r, 120, 1);
        List<String> names = new ArrayList<>();
        for (AdversarialFamilies.Family f : fams) {
            names.add(f.name());
            assertThat(f.n()).isEqualTo(120);
            assertThat(f.fooledRate()).isBetween(0.0, 1.0);
            assertThat(f.examples()).hasSizeLessThanOrEqualTo(Math.min(3, f.fooled()));
        }
        assertThat(names).containsExactly("a_elsewhere", "b_elsewhere", "sibling_a_before", "b_before_a",
                "prefix_at_start", "prefix_early", "prefix_at_end", "prefix_at_final_position", "near_miss");
        // measured with 500 samples: the final position (never trained) is fooled 44% of the time, the control 0%;
        // every other family stays within a percent of its control
        AdversarialFamilies.Family last = fams.get(7);
        assertThat(last.fooledRate()).isGreaterThan(last.controlFooledRate() + 0.2);
        for (AdversarialFamilies.Family f : fams.subList(0, 7)) {
            assertThat(f.fooledRate()).as(f.name()).isLessThan(f.controlFooledRate() + 0.05);
        }
        // seeded: the same search again gives the same counts
        List<AdversarialFamilies.Family> again = AdversarialFamilies.adversarial(model, data, r, 120, 1);
        for (int i = 0; i < fams.size(); i++) {
            assertThat(again.get(i).fooled()).isEqualTo(fams.get(i).fooled());
            assertThat(again.get(i).meanProb()).isEqualTo(fams.get(i).meanProb());
        }
    }

    @Test
    void catalogueAddsUpOnATinyTrainedModel() {
        HookedTransformer model = TrigramExtractorTestModels.tinyModel();
        TrigramDataset data = TrigramExtractorTestModels.tiny().dataset();
        FailureModes.Report rep = FailureModes.analyze(model, data, TrigramExtractor.extract(model.weights()), 50, 3);
        assertConsistent(rep.catalogue(), model, data);
        assertThat(rep.families()).isNotEmpty();
        assertThat(Analysis.mapper().valueToTree(rep).fieldNames()).toIterable()
                .containsExactly("catalogue", "families", "samples_per_family", "seed", "seconds");
        // the same trigrams in contexts of 3 and 4 tokens: every family still fits
        for (int seqLen : new int[] {3, 4}) {
            TrigramDataset shortData = TrigramDataset.generate(16, seqLen, 0.1, 40, 5);
            FailureModes.Report s = FailureModes.analyze(model, shortData, TrigramExtractor.extract(model.weights()),
                    20, 3);
            assertThat(s.families()).hasSize(rep.families().size()).allSatisfy(f -> assertThat(f.n()).isEqualTo(20));
        }
    }
}
