package dev.trilens.train;

import dev.trilens.data.TorchGenerator;
import dev.trilens.data.TrigramDataset;
import java.util.Arrays;

/**
 * Which sequences a run trains and validates on, and in which order it sees them epoch by epoch, drawn as the
 * challenge's training script draws them from PyTorch's global generator once the dataset has been built:
 * <ol>
 *   <li>{@code random_split(dataset, [n_train, n_val])}: one {@code randperm(n_train + n_val)}; its first n_train
 *       entries are the training subset, the rest the validation subset, each in that order;</li>
 *   <li>every epoch, iterating {@code DataLoader(train_subset, batch_size, shuffle=True)} (drop_last off, no
 *       workers): the iterator first draws a base seed ({@code torch.empty((), dtype=torch.int64).random_()}), then
 *       its RandomSampler draws a seed the same way, seeds a private generator with it and yields
 *       {@code randperm(n_train)} of that generator. Batches are consecutive slices of it.</li>
 * </ol>
 * So each epoch takes four 32-bit outputs of the global stream, and any epoch's order follows from the dataset
 * alone: a resumed run replays the seeds of the epochs it skips (microseconds) instead of saving generator state.
 * Nothing here depends on the number of threads.
 *
 * <p>What this assumes of the challenge's training.py, of which only the imports could be read (DataLoader and
 * random_split from torch.utils.data, create_model, BigramDataset): the model is created first (create_model calls
 * torch.manual_seed(seed) and TransformerLens initialises on the CPU generator); BigramDataset then reseeds the
 * global generator with its own seed, as its tokens show (they are torch.manual_seed(seed)'s first draws), so the
 * init does not shift what follows; one dataset of n_train + n_val sequences is split by random_split with the
 * default generator; the training DataLoader shuffles with no generator of its own and keeps the last, partial
 * batch; and nothing else draws from the global generator between epochs. A validation DataLoader iterated every
 * epoch would break the last point: each pass draws one more base seed (two outputs) even without shuffling.
 */
public final class DataOrder {
    private final int[] train;
    private final int[] validation;
    private final TorchGenerator global;
    private int epochsDrawn;

    /** The split and loader stream of a run over all of ds's sequences (nTrain + nVal of them). */
    public static DataOrder of(TrigramDataset ds, int nTrain, int nVal) {
        if ((long) nTrain + nVal != ds.size()) {
            throw new IllegalArgumentException("a split of " + nTrain + " + " + nVal + " sequences needs a dataset of "
                    + "exactly that many, got " + ds.size());
        }
        return new DataOrder(ds.generatorAfter(), nTrain, nVal);
    }

    /** The split and loader stream drawn from global (torch's global generator as it stands), which this consumes. */
    public DataOrder(TorchGenerator global, int nTrain, int nVal) {
        if (nTrain < 1 || nVal < 0) {
            throw new IllegalArgumentException("expected n_train >= 1 and n_val >= 0, got " + nTrain + " and " + nVal);
        }
        this.global = global;
        int[] split = global.randperm(nTrain + nVal);
        train = Arrays.copyOfRange(split, 0, nTrain);
        validation = Arrays.copyOfRange(split, nTrain, split.length);
    }

    /** Dataset indices of the training subset, in random_split's order. A copy. */
    public int[] trainIndices() {
        return train.clone();
    }

    /** Dataset indices of the validation subset, in random_split's order. A copy. */
    public int[] validationIndices() {
        return validation.clone();
    }

    /**
     * The dataset indices of epoch {@code epoch}'s (1-based) training sequences, in the order the DataLoader yields
     * them. Epochs must be asked for in increasing order; the seeds of skipped ones are drawn and discarded.
     */
    public int[] epoch(int epoch) {
        if (epoch <= epochsDrawn) {
            throw new IllegalStateException("epoch " + epoch + " asked for after epoch " + epochsDrawn
                    + ": the loader's stream only moves forward");
        }
        while (epochsDrawn < epoch - 1) {
            global.randomInt64();
            global.randomInt64();
            epochsDrawn++;
        }
        global.randomInt64(); // the iterator's base seed (for worker processes; there are none)
        long samplerSeed = global.randomInt64();
        epochsDrawn = epoch;
        int[] perm = new TorchGenerator(samplerSeed).randperm(train.length);
        int[] order = new int[perm.length];
        for (int i = 0; i < perm.length; i++) {
            order[i] = train[perm[i]];
        }
        return order;
    }
}
