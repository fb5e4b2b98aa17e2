package dev.trilens.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The chunked stream against generate(): same rows, same generator position, the same refusals. */
class TrigramDatasetChunksTest {

    @Test
    void chunksConcatenateToGenerateAndLeaveTheGeneratorWhereItDoes() {
        TrigramDataset whole = TrigramDataset.generate(20, 9, 0.1, 7, 11);
        List<TrigramDataset> chunks = new ArrayList<>();
        TrigramDataset.forEachChunk(20, 9, 0.1, 7, 11, 4, chunks::add);
        // 11 rows in chunks of at most 4: 4, 4, 3
        assertThat(chunks).extracting(TrigramDataset::size).containsExactly(4, 4, 3);
        int row = 0;
        for (TrigramDataset c : chunks) {
            assertThat(c.tokens()).containsExactly(whole.tokensOf(row, row + c.size()));
            assertThat(c.trigrams()).isDeepEqualTo(whole.trigrams());
            assertThat(c.seqLen()).isEqualTo(9);
            assertThat(c.dVocab()).isEqualTo(20);
            assertThat(c.trigramProb()).isEqualTo(0.1);
            row += c.size();
            // each chunk's generator sits just past its own rows: its next draws are the next chunk's
            TrigramDataset partial = TrigramDataset.generate(20, 9, 0.1, 7, row);
            assertThat(c.generatorAfter().randomInt64()).isEqualTo(partial.generatorAfter().randomInt64());
        }
        assertThat(row).isEqualTo(11);
        assertThat(chunks.get(2).generatorAfter().randomInt64()).isEqualTo(whole.generatorAfter().randomInt64());
    }

    @Test
    void oneChunkWhenChunkRowsExceedsTheSize() {
        List<TrigramDataset> chunks = new ArrayList<>();
        TrigramDataset.forEachChunk(10, 5, 0.2, 3, 3, 3, chunks::add);
        assertThat(chunks).hasSize(1);
        assertThat(chunks.get(0).tokens()).containsExactly(TrigramDataset.generate(10, 5, 0.2, 3, 3).tokens());
        List<TrigramDataset> single = new ArrayList<>();
        TrigramDataset.forEachChunk(10, 5, 0.2, 3, 1, 1, single::add);
        assertThat(single).hasSize(1);
    }

    @Test
    void chunkedStreamRefusesWhatGenerateRefuses() {
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(10, 5, 1.5, 3, 3, 2, c -> { }))
                .isInstanceOf(TrilensException.class).hasMessage("trigram_prob must be in [0, 1], got 1.5");
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(10, 5, -0.1, 3, 3, 2, c -> { }))
                .isInstanceOf(TrilensException.class).hasMessageContaining("got -0.1");
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(10, 5, 0.1, 3, 0, 2, c -> { }))
                .isInstanceOf(TrilensException.class).hasMessage("dataset size must be >= 1 sequence, got 0");
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(10, 5, 0.1, 3, 3, 0, c -> { }))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("chunkRows must be >= 1, got 0");
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(2, 5, 0.1, 3, 3, 2, c -> { }))
                .isInstanceOf(TrilensException.class).hasMessage("d_vocab must be >= 3, got 2");
    }

    @Test
    void theEndsOfEveryRangeAreAccepted() {
        // probability 0 and 1, zero trigrams, the smallest vocabulary, context and size
        assertThat(TrigramDataset.generate(3, 3, 0.0, 1, 1).nTrigrams()).isZero();
        // 1.0 passes the range check and is then refused for what it asks, not for being out of range
        assertThatThrownBy(() -> TrigramDataset.generate(4, 3, 1.0, 1, 1))
                .isInstanceOf(TrilensException.class).hasMessageStartingWith("cannot draw n_trigrams=12");
        assertThat(TrigramDataset.withTrigramCount(3, 3, 0, 1, 1).nTrigrams()).isZero();
        assertThatThrownBy(() -> TrigramDataset.withTrigramCount(3, 3, -1, 1, 1))
                .isInstanceOf(TrilensException.class).hasMessage("n_trigrams must be >= 0, got -1");
        assertThatThrownBy(() -> TrigramDataset.withTrigramCount(2, 3, 0, 1, 1))
                .isInstanceOf(TrilensException.class).hasMessage("d_vocab must be >= 3, got 2");
        List<Integer> sizes = new ArrayList<>();
        TrigramDataset.forEachChunk(3, 3, 0.0, 1, 1, 1, c -> sizes.add(c.size()));
        TrigramDataset.forEachChunk(4, 3, 0.0, 1, 2, 1, c -> sizes.add(c.size()));
        assertThat(sizes).containsExactly(1, 1, 1);
        assertThatThrownBy(() -> TrigramDataset.forEachChunk(4, 3, 1.0, 1, 2, 1, c -> { }))
                .isInstanceOf(TrilensException.class).hasMessageStartingWith("cannot draw n_trigrams=12");
    }
}
