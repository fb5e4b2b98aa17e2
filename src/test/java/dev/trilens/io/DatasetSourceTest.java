package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Which dataset a checkpoint is measured on: the user's flags, else its metadata, else the challenge's. */
class DatasetSourceTest {

    private static final ModelConfig SMALL = new ModelConfig(12, 9, 8, 1, 1, 8, 0, false);

    private static Checkpoint checkpoint(ModelConfig cfg, Map<String, String> metadata) {
        return new Checkpoint(Weights.init(cfg, 1), metadata);
    }

    @Test
    void flagsWinOverMetadataWhichWinsOverTheChallengesData() {
        Checkpoint trained = checkpoint(SMALL, Map.of(DatasetSource.META_SEED, "7",
                DatasetSource.META_TRIGRAM_PROB, "0.125"));
        assertThat(DatasetSource.resolve(trained, null, null)).isEqualTo(new DatasetSource.Spec(7, 0.125));
        assertThat(DatasetSource.resolve(trained, 9L, null)).isEqualTo(new DatasetSource.Spec(9, 0.125));
        assertThat(DatasetSource.resolve(trained, null, 0.25)).isEqualTo(new DatasetSource.Spec(7, 0.25));

        Checkpoint silent = checkpoint(SMALL, Map.of());
        assertThat(DatasetSource.resolve(silent, null, null)).isEqualTo(new DatasetSource.Spec(40, 0.05));
        assertThat(DatasetSource.resolve(silent, 3L, 0.5)).isEqualTo(new DatasetSource.Spec(3, 0.5));
        // one key recorded, the other from the challenge
        assertThat(DatasetSource.resolve(checkpoint(SMALL, Map.of(DatasetSource.META_TRIGRAM_PROB, "0.2")), null,
                null)).isEqualTo(new DatasetSource.Spec(40, 0.2));
    }

    @Test
    void malformedMetadataAsksForTheFlags() {
        for (Map<String, String> meta : List.of(Map.of(DatasetSource.META_SEED, "forty"),
                Map.of(DatasetSource.META_TRIGRAM_PROB, "0.05x"))) {
            assertThatThrownBy(() -> DatasetSource.resolve(checkpoint(SMALL, meta), null, null))
                    .isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith("checkpoint metadata has a malformed dataset parameter (")
                    .hasMessageEndingWith("); pass --seed and --trigram-prob explicitly");
        }
        // given flags never read the metadata
        assertThat(DatasetSource.resolve(checkpoint(SMALL, Map.of(DatasetSource.META_SEED, "forty")), 1L, null))
                .isEqualTo(new DatasetSource.Spec(1, 0.05));
    }

    @Test
    void aContextTooShortForATrigramIsRefused() {
        ModelConfig two = new ModelConfig(12, 2, 8, 1, 1, 8, 0, false);
        assertThatThrownBy(() -> DatasetSource.resolve(checkpoint(two, Map.of()), null, null))
                .isInstanceOf(TrilensException.class)
                .hasMessage("the model's n_ctx is 2, but trigram sequences need at least 3");
        ModelConfig three = new ModelConfig(12, 3, 8, 1, 1, 8, 0, false);
        assertThat(DatasetSource.resolve(checkpoint(three, Map.of()), null, null).generate(three, 4).seqLen())
                .isEqualTo(3);
    }

    @Test
    void theSpecsDatasetHasTheModelsVocabularyAndContext() {
        TrigramDataset ds = new DatasetSource.Spec(7, 0.125).generate(SMALL, 5);
        TrigramDataset expected = TrigramDataset.generate(12, 9, 0.125, 7, 5);
        assertThat(ds.dVocab()).isEqualTo(12);
        assertThat(ds.seqLen()).isEqualTo(9);
        assertThat(ds.size()).isEqualTo(5);
        assertThat(ds.tokens()).isEqualTo(expected.tokens());
    }
}
