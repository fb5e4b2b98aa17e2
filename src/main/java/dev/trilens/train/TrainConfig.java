package dev.trilens.train;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.io.DatasetSource;
import dev.trilens.io.FileText;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything that determines a training run: the data (one dataset of nTrain + nVal sequences, split into training
 * and validation sequences by torch's random_split, see {@link DataOrder}), the optimizer and schedule, the model
 * shape and the init seed. The dataset's generator, continued, also draws the split and each epoch's shuffle, as in
 * the challenge's training script. Same config -> same weights.
 *
 * <p>As JSON: typed values (the metadata is all strings), snake_case as in TransformerLens's config, with
 * layerNorm written as normalization "LN" or "none".
 *
 * @param dMlp 0 for an attention-only model
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
@JsonPropertyOrder({"d_vocab", "seq_len", "trigram_prob", "data_seed", "n_train", "n_val", "epochs", "batch_size",
        "lr_start", "lr_end", "weight_decay", "d_model", "n_heads", "d_head", "d_mlp", "n_layers", "normalization",
        "init_seed"})
public record TrainConfig(int dVocab, int seqLen, double trigramProb, long dataSeed, int nTrain, int nVal,
                          int epochs, int batchSize, double lrStart, double lrEnd, double weightDecay,
                          int dModel, int nHeads, int dHead, int dMlp, int nLayers, @JsonIgnore boolean layerNorm,
                          long initSeed) {

    public TrainConfig {
        if (dVocab < 3) {
            throw new TrilensException("d_vocab must be >= 3, got " + dVocab);
        }
        if (seqLen < 3) {
            throw new TrilensException("seq_len must be >= 3 (a trigram needs three positions), got " + seqLen);
        }
        if (!(trigramProb > 0 && trigramProb < 1)) {
            throw new TrilensException("trigram_prob must be > 0 and < 1, got " + trigramProb);
        }
        positive("n_train (training sequences)", nTrain);
        positive("n_val (validation sequences)", nVal);
        if ((long) nTrain + nVal > Integer.MAX_VALUE / seqLen) {
            throw new TrilensException("n_train + n_val = " + ((long) nTrain + nVal) + " sequences of seq_len "
                    + seqLen + " is too many tokens; expected at most " + Integer.MAX_VALUE / seqLen + " sequences");
        }
        positive("epochs", epochs);
        positive("batch_size", batchSize);
        if (!(lrStart > 0 && Double.isFinite(lrStart)) || !(lrEnd > 0 && Double.isFinite(lrEnd))) {
            throw new TrilensException("learning rates must be finite and > 0, got lr_start=" + lrStart
                    + " lr_end=" + lrEnd);
        }
        if (!(weightDecay >= 0 && Double.isFinite(weightDecay))) {
            throw new TrilensException("weight_decay must be finite and >= 0, got " + weightDecay);
        }
        positive("d_model", dModel);
        positive("n_heads", nHeads);
        positive("d_head", dHead);
        positive("n_layers", nLayers);
        if (dMlp < 0) {
            throw new TrilensException("d_mlp must be >= 0 (0 means attention-only), got " + dMlp);
        }
    }

    private static void positive(String name, long value) {
        if (value <= 0) {
            throw new TrilensException(name + " must be a positive integer, got " + value);
        }
    }

    /** The challenge's recipe, as its README states it. */
    public static TrainConfig arena() {
        return new TrainConfig(75, 50, 0.05, 40, 100_000, 5_000, 100, 512, 1e-3, 1e-4, 1e-3,
                32, 1, 16, 20, 1, false, 40);
    }

    /**
     * A scaled-down arena for demos and smoke tests: the arena's model shape and trigram_prob, but vocabulary 24
     * (27 trigrams), 4,000 + 500 sequences of 20 tokens, 30 epochs of batch 128 and a 10x higher learning rate
     * (1e-2 -> 1e-3). It gets every trigram right with average probability ~0.9 in about 10 s on 2 cores.
     */
    public static TrainConfig quick() {
        return new TrainConfig(24, 20, 0.05, 40, 4_000, 500, 30, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 20, 1, false, 40);
    }

    /**
     * The challenge's data and model on a short recipe, for grids of runs: the arena's generator (d_vocab 75, 277
     * trigrams, data seed 40) and model, 20,000 + 1,000 sequences of 50 tokens instead of 100,000 + 5,000, 20 epochs of
     * batch 128 at a 10x higher learning rate (1e-2 -> 1e-3): a twenty-fifth of the sequences the arena trains on. It
     * gets about nine in ten trigrams right, at an average correct probability of about 0.75 (see the README's
     * "Presets").
     */
    public static TrainConfig fast() {
        return new TrainConfig(75, 50, 0.05, 40, 20_000, 1_000, 20, 128, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 20, 1, false, 40);
    }

    public static TrainConfig preset(String name) {
        return switch (name) {
            case "arena" -> arena();
            case "quick" -> quick();
            case "fast" -> fast();
            default -> throw new TrilensException("unknown preset '" + name + "', expected arena, fast or quick");
        };
    }

    public ModelConfig modelConfig() {
        return new ModelConfig(dVocab, seqLen, dModel, nLayers, nHeads, dHead, dMlp, layerNorm);
    }

    public LrSchedule schedule() {
        return new LrSchedule(lrStart, lrEnd, epochs);
    }

    /** This recipe on a model of another shape: n_ctx is the sequences' length, d_vocab the dataset's vocabulary. */
    public TrainConfig withModel(ModelConfig m) {
        return with(c -> {
            c.dVocab = m.dVocab();
            c.seqLen = m.nCtx();
            c.dModel = m.dModel();
            c.nHeads = m.nHeads();
            c.dHead = m.dHead();
            c.dMlp = m.dMlp();
            c.nLayers = m.nLayers();
            c.layerNorm = m.layerNorm();
        });
    }

    public TrainConfig withBatchSize(int n) {
        return with(c -> c.batchSize = n);
    }

    public TrainConfig withEpochs(int n) {
        return with(c -> c.epochs = n);
    }

    public TrainConfig withDHead(int n) {
        return with(c -> c.dHead = n);
    }

    public TrainConfig withDMlp(int n) {
        return with(c -> c.dMlp = n);
    }

    public TrainConfig withDataSeed(long seed) {
        return with(c -> c.dataSeed = seed);
    }

    public TrainConfig withInitSeed(long seed) {
        return with(c -> c.initSeed = seed);
    }

    public TrainConfig withTrigramProb(double p) {
        return with(c -> c.trigramProb = p);
    }

    /** Data and init seed together, as the CLI's --seed sets them. */
    public TrainConfig withSeed(long seed) {
        return with(c -> {
            c.dataSeed = seed;
            c.initSeed = seed;
        });
    }

    /** A copy with the fields change sets, validated again as a new config. */
    private TrainConfig with(java.util.function.Consumer<Fields> change) {
        Fields c = new Fields(this);
        change.accept(c);
        return new TrainConfig(c.dVocab, c.seqLen, c.trigramProb, c.dataSeed, c.nTrain, c.nVal, c.epochs, c.batchSize,
                c.lrStart, c.lrEnd, c.weightDecay, c.dModel, c.nHeads, c.dHead, c.dMlp, c.nLayers, c.layerNorm,
                c.initSeed);
    }

    /** The components as fields, for {@link #with}: one place that lists them all. */
    private static final class Fields {
        int dVocab, seqLen, nTrain, nVal, epochs, batchSize, dModel, nHeads, dHead, dMlp, nLayers;
        double trigramProb, lrStart, lrEnd, weightDecay;
        long dataSeed, initSeed;
        boolean layerNorm;

        Fields(TrainConfig t) {
            dVocab = t.dVocab;
            seqLen = t.seqLen;
            trigramProb = t.trigramProb;
            dataSeed = t.dataSeed;
            nTrain = t.nTrain;
            nVal = t.nVal;
            epochs = t.epochs;
            batchSize = t.batchSize;
            lrStart = t.lrStart;
            lrEnd = t.lrEnd;
            weightDecay = t.weightDecay;
            dModel = t.dModel;
            nHeads = t.nHeads;
            dHead = t.dHead;
            dMlp = t.dMlp;
            nLayers = t.nLayers;
            layerNorm = t.layerNorm;
            initSeed = t.initSeed;
        }
    }

    /** Keys beyond the model config that a checkpoint's metadata carries (evaluate reads the data.* ones). */
    static final String N_TRAIN = "data.n_train", N_VAL = "data.n_val", EPOCHS = "train.epochs",
            BATCH = "train.batch_size", LR_START = "train.lr_start", LR_END = "train.lr_end",
            WD = "train.weight_decay";
    /** The seed of the model's initial weights, in the metadata of every checkpoint trilens trained. */
    public static final String INIT_SEED = "train.init_seed";

    /** String metadata for checkpoints: the model config keys plus the data and training parameters. */
    public Map<String, String> toMetadata() {
        Map<String, String> m = new LinkedHashMap<>(Safetensors.configMetadata(modelConfig()));
        m.put(DatasetSource.META_SEED, Long.toString(dataSeed));
        // Double.toString round-trips exactly, so a resumed run reads back the very same doubles
        m.put(DatasetSource.META_TRIGRAM_PROB, Double.toString(trigramProb));
        m.put(N_TRAIN, Integer.toString(nTrain));
        m.put(N_VAL, Integer.toString(nVal));
        m.put(EPOCHS, Integer.toString(epochs));
        m.put(BATCH, Integer.toString(batchSize));
        m.put(LR_START, Double.toString(lrStart));
        m.put(LR_END, Double.toString(lrEnd));
        m.put(WD, Double.toString(weightDecay));
        m.put(INIT_SEED, Long.toString(initSeed));
        return m;
    }

    /** The normalization as TransformerLens names it: "LN" or "none". */
    @JsonProperty("normalization")
    public String normalization() {
        return layerNorm ? "LN" : "none";
    }

    /** Inverse of {@link #toMetadata}; where names the file in error messages. */
    public static TrainConfig fromMetadata(Map<String, String> m, String where) {
        try {
            String norm = get(m, "normalization");
            return new TrainConfig(Integer.parseInt(get(m, "d_vocab")), Integer.parseInt(get(m, "n_ctx")),
                    Double.parseDouble(get(m, DatasetSource.META_TRIGRAM_PROB)),
                    Long.parseLong(get(m, DatasetSource.META_SEED)),
                    Integer.parseInt(get(m, N_TRAIN)), Integer.parseInt(get(m, N_VAL)),
                    Integer.parseInt(get(m, EPOCHS)), Integer.parseInt(get(m, BATCH)),
                    Double.parseDouble(get(m, LR_START)), Double.parseDouble(get(m, LR_END)),
                    Double.parseDouble(get(m, WD)), Integer.parseInt(get(m, "d_model")),
                    Integer.parseInt(get(m, "n_heads")), Integer.parseInt(get(m, "d_head")),
                    Integer.parseInt(get(m, "d_mlp")), Integer.parseInt(get(m, "n_layers")),
                    norm.equals("LN"), Long.parseLong(get(m, INIT_SEED)));
        } catch (NumberFormatException e) {
            throw new TrilensException(where + ": malformed training parameter in metadata ("
                    + FileText.show(e.getMessage()) + "); expected the numbers trilens train wrote", e);
        } catch (TrilensException e) {
            throw new TrilensException(where + ": " + e.getMessage(), e);
        }
    }

    private static String get(Map<String, String> m, String key) {
        String v = m.get(key);
        if (v == null) {
            throw new TrilensException("metadata lacks '" + key + "', expected a file written by trilens train");
        }
        return v.trim();
    }

    /** One line for logs and terminals. */
    public String describe() {
        return "data: d_vocab=" + dVocab + " seq_len=" + seqLen + " trigram_prob=" + trigramProb + " seed=" + dataSeed
                + " train=" + nTrain + " val=" + nVal + "; model: " + modelConfig() + " init_seed=" + initSeed
                + "; AdamW: " + epochs + " epochs, batch " + batchSize + ", lr " + lrStart + " -> " + lrEnd
                + ", weight_decay " + weightDecay;
    }
}
