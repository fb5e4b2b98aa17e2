package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TrainConfigTest {

    @Test
    void arenaIsTheChallengeRecipe() {
        TrainConfig a = TrainConfig.arena();
        assertThat(a.modelConfig()).isEqualTo(ModelConfig.arena());
        assertThat(a.trigramProb()).isEqualTo(0.05);
        assertThat(a.dataSeed()).isEqualTo(40);
        assertThat(a.nTrain()).isEqualTo(100_000);
        assertThat(a.nVal()).isEqualTo(5_000);
        assertThat(a.epochs()).isEqualTo(100);
        assertThat(a.batchSize()).isEqualTo(512);
        assertThat(a.lrStart()).isEqualTo(1e-3);
        assertThat(a.lrEnd()).isEqualTo(1e-4);
        assertThat(a.weightDecay()).isEqualTo(1e-3);
    }

    @Test
    void metadataRoundTrips() {
        for (TrainConfig c : new TrainConfig[] {TrainConfig.arena(), TrainConfig.quick().withDMlp(0).withSeed(7)}) {
            Map<String, String> meta = c.toMetadata();
            assertThat(meta).containsEntry("data.seed", Long.toString(c.dataSeed()))
                    .containsEntry("data.trigram_prob", Double.toString(c.trigramProb()))
                    .containsKeys("d_vocab", "n_ctx", "d_mlp", "train.lr_start");
            assertThat(TrainConfig.fromMetadata(meta, "f")).isEqualTo(c);
        }
    }

    @Test
    void variantsChangeOneFieldAndDescribeThemselves() {
        TrainConfig q = TrainConfig.quick();
        assertThat(q.withDHead(8)).isEqualTo(new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 30, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 8, 20, 1, false, 40));
        // every other wither: its own field, and nothing else
        assertThat(q.withBatchSize(64)).isEqualTo(new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 30, 64, 1e-2, 1e-3,
                1e-3, 32, 1, 16, 20, 1, false, 40));
        assertThat(q.withEpochs(7)).isEqualTo(new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 7, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 20, 1, false, 40));
        assertThat(q.withDMlp(0)).isEqualTo(new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 30, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 0, 1, false, 40));
        assertThat(q.withDataSeed(3)).isEqualTo(new TrainConfig(24, 20, 0.05, 3, 4_000, 500, 30, 128, 1e-2, 1e-3,
                1e-3, 32, 1, 16, 20, 1, false, 40));
        assertThat(q.withInitSeed(5)).isEqualTo(new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 30, 128, 1e-2, 1e-3,
                1e-3, 32, 1, 16, 20, 1, false, 5));
        assertThat(q.withSeed(9)).isEqualTo(new TrainConfig(24, 20, 0.05, 9, 4_000, 500, 30, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 20, 1, false, 9));
        assertThat(q.withTrigramProb(0.1)).isEqualTo(new TrainConfig(24, 20, 0.1, 40, 4_000, 500, 30, 128, 1e-2, 1e-3,
                1e-3, 32, 1, 16, 20, 1, false, 40));
        assertThat(q.withModel(new ModelConfig(40, 12, 64, 2, 2, 8, 30, true))).isEqualTo(new TrainConfig(40, 12,
                0.05, 40, 4_000, 500, 30, 128, 1e-2, 1e-3, 1e-3, 64, 2, 8, 30, 2, true, 40));
        JsonNode json = new ObjectMapper().valueToTree(q);
        assertThat(json.fieldNames()).toIterable().containsExactly("d_vocab", "seq_len", "trigram_prob", "data_seed",
                "n_train", "n_val", "epochs", "batch_size", "lr_start", "lr_end", "weight_decay", "d_model", "n_heads",
                "d_head", "d_mlp", "n_layers", "normalization", "init_seed");
        assertThat(json.get("normalization").textValue()).isEqualTo("none");
        assertThat(json.get("d_head").isInt()).isTrue();
        assertThat(json.get("d_head").intValue()).isEqualTo(16);
        assertThat(json.get("init_seed").longValue()).isEqualTo(40L);
        TrainConfig ln = new TrainConfig(24, 20, 0.05, 40, 10, 10, 1, 4, 1e-3, 1e-3, 0, 8, 1, 4, 0, 1, true, 1);
        assertThat(new ObjectMapper().valueToTree(ln).get("normalization").textValue()).isEqualTo("LN");
        assertThat(q.describe()).isEqualTo("data: d_vocab=24 seq_len=20 trigram_prob=0.05 seed=40 train=4000 val=500; "
                + "model: " + q.modelConfig() + " init_seed=40; AdamW: 30 epochs, batch 128, lr 0.01 -> 0.001, "
                + "weight_decay 0.001");
    }

    @Test
    void theFastPresetTrainsTheChallengesModelOnTheChallengesDataWithATwentyFifthOfItsSequences() {
        TrainConfig a = TrainConfig.arena(), f = TrainConfig.preset("fast");
        assertThat(f).isEqualTo(TrainConfig.fast());
        // the same generator (so the same 277 trigrams) and the same model
        assertThat(List.of(f.dVocab(), f.seqLen(), f.dataSeed())).isEqualTo(List.of(a.dVocab(), a.seqLen(),
                a.dataSeed()));
        assertThat(f.trigramProb()).isEqualTo(a.trigramProb());
        assertThat(f.modelConfig()).isEqualTo(a.modelConfig());
        // sequences seen: 20 epochs x 20,000 against 100 x 100,000, a twenty-fifth
        assertThat((double) f.epochs() * f.nTrain() / ((double) a.epochs() * a.nTrain())).isEqualTo(0.04);
        assertThat(f.lrStart()).isEqualTo(10 * a.lrStart());
    }

    @Test
    void badValuesSayWhatWasExpected() {
        TrainConfig q = TrainConfig.quick();
        assertThatThrownBy(() -> q.withEpochs(0)).isInstanceOf(TrilensException.class)
                .hasMessage("epochs must be a positive integer, got 0");
        assertThatThrownBy(() -> q.withDHead(-1)).isInstanceOf(TrilensException.class)
                .hasMessage("d_head must be a positive integer, got -1");
        assertThatThrownBy(() -> q.withDMlp(-2)).isInstanceOf(TrilensException.class)
                .hasMessage("d_mlp must be >= 0 (0 means attention-only), got -2");
        assertThatThrownBy(() -> new TrainConfig(24, 20, 1.5, 1, 10, 10, 1, 4, 1e-3, 1e-3, 0, 8, 1, 4, 0, 1, false, 1))
                .hasMessage("trigram_prob must be > 0 and < 1, got 1.5");
        assertThatThrownBy(() -> new TrainConfig(24, 20, 0.1, 1, 10, 10, 1, 4, 0, 1e-3, 0, 8, 1, 4, 0, 1, false, 1))
                .hasMessage("learning rates must be finite and > 0, got lr_start=0.0 lr_end=0.001");
        assertThatThrownBy(() -> TrainConfig.preset("big")).isInstanceOf(TrilensException.class)
                .hasMessage("unknown preset 'big', expected arena, fast or quick");
        assertThatThrownBy(() -> TrainConfig.fromMetadata(Map.of("d_vocab", "5"), "state.safetensors"))
                .isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("state.safetensors: metadata lacks '");
    }
}
