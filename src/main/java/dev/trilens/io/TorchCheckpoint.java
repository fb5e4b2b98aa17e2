package dev.trilens.io;

import dev.trilens.TrilensException;
import dev.trilens.io.StateDictUnpickler.StorageRef;
import dev.trilens.io.StateDictUnpickler.TensorRef;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import net.razorvine.pickle.PickleException;

/** PyTorch's zip checkpoint format (torch.save since 1.6) holding a TransformerLens HookedTransformer state dict. */
public final class TorchCheckpoint {

    /** One tensor of a state dict: torch dtype name (e.g. "float32", "bool"), shape, values row-major as floats. */
    public record Tensor(String dtype, int[] shape, float[] values) {
    }

    /** data.pkl of a state dict is about 100 bytes per tensor; far more means it is not one. */
    private static final int MAX_PICKLE_BYTES = 32 << 20;
    private static final int MAX_ARRAY = Integer.MAX_VALUE - 8;
    /**
     * torch.save stores every entry uncompressed, so a checkpoint inflates to about its own size. A re-zipped one
     * (DEFLATE) can shrink well: a bool attention mask to a thousandth. Reading stops once the entries have given
     * this many bytes: 16 times the file's size, plus 32 MiB for small files with large masks.
     */
    static final int INFLATE_RATIO = 16;
    static final long INFLATE_FLOOR = 32L << 20;

    private TorchCheckpoint() {
    }

    /** Every tensor of the state dict in file order, buffers included. */
    public static Map<String, Tensor> readStateDict(Path path) {
        return read(path, Reader::readAll);
    }

    /** The model in the checkpoint, its config inferred from the keys and shapes, every parameter checked. */
    public static Weights load(Path path) {
        return read(path, Reader::readWeights);
    }

    private interface Body<T> {
        T apply(Reader r) throws IOException;
    }

    private static <T> T read(Path path, Body<T> body) {
        Checkpoints.requireFile(path);
        String file = path.toString();
        try (ZipFile zip = new ZipFile(path.toFile())) {
            return body.apply(new Reader(zip, file, Files.size(path)));
        } catch (ZipException | EOFException e) {
            String why = e.getMessage() != null ? FileText.show(e.getMessage()) : "an entry ends before its stated size";
            throw new TrilensException("checkpoint " + file + " is not a readable zip archive (" + why
                    + "): expected a PyTorch checkpoint written by torch.save, complete and uncorrupted", e);
        } catch (IOException e) {
            throw new TrilensException("cannot read checkpoint " + file + ": " + AtomicFiles.describe(e), e);
        }
    }

    /** One open checkpoint: its data.pkl read and unpickled, storages read on demand within the inflate budget. */
    private static final class Reader {
        final ZipFile zip;
        final String file;
        final String prefix;
        final ByteOrder order;
        final Map<String, TensorRef> refs;
        final long inflateCap;
        long inflated;

        Reader(ZipFile zip, String file, long fileSize) throws IOException {
            this.zip = zip;
            this.file = file;
            this.inflateCap = INFLATE_FLOOR + INFLATE_RATIO * fileSize;
            this.prefix = findPrefix(zip, file);
            this.order = byteOrder(this);
            byte[] pkl = readEntry(zip.getEntry(prefix + "data.pkl"), MAX_PICKLE_BYTES);
            this.refs = unpickle(pkl, file);
        }

        Map<String, Tensor> readAll() throws IOException {
            Map<String, byte[]> storages = readStorages(refs);
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (Map.Entry<String, TensorRef> e : refs.entrySet()) {
                TensorRef t = e.getValue();
                byte[] bytes = storages.get(t.storage().key());
                int[] shape = shape(e.getKey(), t);
                float[] values = new float[numel(shape)];
                materialize(e.getKey(), t, bytes, values, 0);
                out.put(e.getKey(), new Tensor(t.storage().dtype(), shape, values));
            }
            return out;
        }

        Weights readWeights() throws IOException {
            Map<String, StateDictSchema.Entry> entries = new LinkedHashMap<>();
            for (Map.Entry<String, TensorRef> e : refs.entrySet()) {
                entries.put(e.getKey(), new StateDictSchema.Entry(e.getValue().storage().dtype(),
                        shape(e.getKey(), e.getValue())));
            }
            ModelConfig cfg = StateDictSchema.resolve(file, entries, null);
            // buffers are derived from the config: only the parameters' storages are read
            Map<String, TensorRef> params = new LinkedHashMap<>();
            ParamLayout layout = new ParamLayout(cfg);
            for (ParamLayout.Param p : layout.params()) {
                params.put(p.name(), refs.get(p.name()));
            }
            Map<String, byte[]> storages = readStorages(params);
            Weights w = new Weights(cfg);
            for (ParamLayout.Param p : w.layout.params()) {
                TensorRef t = params.get(p.name());
                materialize(p.name(), t, storages.get(t.storage().key()), w.data, p.offset());
            }
            return w;
        }

        /**
         * The storages these tensors view, each read whole. What they need in all (from the sizes data.pkl states)
         * is checked against the inflate budget before any is read, and each is read only up to its own need.
         */
        private Map<String, byte[]> readStorages(Map<String, TensorRef> tensors) throws IOException {
            Map<String, StorageRef> distinct = new LinkedHashMap<>();
            long need = 0;
            long elements = 0;
            for (Map.Entry<String, TensorRef> e : tensors.entrySet()) {
                StorageRef s = e.getValue().storage();
                StorageRef first = distinct.putIfAbsent(s.key(), s);
                if (first == null) {
                    need += storageBytes(s);
                } else if (storageBytes(first) != storageBytes(s)) {
                    // torch lets views of one storage differ in dtype, never in byte size
                    throw new TrilensException("checkpoint " + file + ": storage '" + FileText.show(s.key())
                            + "' is named as " + first.numel() + " " + first.dtype() + " values and as "
                            + s.numel() + " " + s.dtype() + " values, expected one size per storage");
                }
                elements += numel(shape(e.getKey(), e.getValue()));
                if (need > inflateCap - inflated || elements > inflateCap) {
                    throw new TrilensException("checkpoint " + file + ": its tensors need more than " + inflateCap
                            + " bytes (" + INFLATE_RATIO + " times the file's size + " + (INFLATE_FLOOR >> 20)
                            + " MiB), expected a torch.save file, which stores its tensors uncompressed");
                }
            }
            Map<String, byte[]> out = new HashMap<>();
            for (StorageRef s : distinct.values()) {
                out.put(s.key(), readStorage(s));
            }
            return out;
        }

        private long storageBytes(StorageRef s) {
            if (s.numel() < 0 || s.numel() > MAX_ARRAY / elementSize(s.dtype())) {
                throw new TrilensException("checkpoint " + file + ": storage '" + FileText.show(s.key())
                        + "' declares " + s.numel() + " " + s.dtype() + " values, expected 0 to "
                        + MAX_ARRAY / elementSize(s.dtype()));
            }
            return s.numel() * elementSize(s.dtype());
        }

        private byte[] readStorage(StorageRef s) throws IOException {
            String name = prefix + "data/" + s.key();
            ZipEntry e = zip.getEntry(name);
            if (e == null) {
                throw new TrilensException("checkpoint " + file + " has no entry '" + FileText.show(name)
                        + "' for storage '" + FileText.show(s.key()) + "' referenced by data.pkl");
            }
            long need = storageBytes(s);
            if (e.getSize() != need) {
                throw new TrilensException("checkpoint " + file + ": '" + FileText.show(name) + "' holds "
                        + e.getSize() + " bytes, expected " + s.numel() + " " + s.dtype() + " values (" + need
                        + " bytes)");
            }
            return readEntry(e, MAX_ARRAY);
        }

        /**
         * An entry's bytes: at most its declared size, which must be within limit and the inflate budget, and then
         * one byte more to be sure it ends there, so a forged entry never inflates further than it claims.
         */
        byte[] readEntry(ZipEntry e, int limit) throws IOException {
            long size = e.getSize();
            if (size < 0 || size > limit) {
                throw new TrilensException("checkpoint " + file + ": '" + FileText.show(e.getName()) + "' is "
                        + size + " bytes, expected at most " + limit + " for a state dict");
            }
            if (size > inflateCap - inflated) {
                throw new TrilensException("checkpoint " + file + ": its entries inflate to more than " + inflateCap
                        + " bytes (" + INFLATE_RATIO + " times the file's size + " + (INFLATE_FLOOR >> 20)
                        + " MiB), expected a torch.save file, which stores its entries uncompressed");
            }
            inflated += size;
            byte[] b = new byte[(int) size];
            int n;
            boolean longer;
            try (InputStream in = zip.getInputStream(e)) {
                n = in.readNBytes(b, 0, b.length);
                longer = n == b.length && in.read() != -1;
            }
            // ZipFile does not check the CRC of stored entries, and torch stores every entry uncompressed
            CRC32 crc = new CRC32();
            crc.update(b, 0, n);
            if (n != size || longer || (e.getCrc() != -1 && crc.getValue() != e.getCrc())) {
                throw new TrilensException("checkpoint " + file + ": entry '" + FileText.show(e.getName())
                        + "' is corrupted (size or CRC does not match the zip directory): expected an intact "
                        + "torch.save file");
            }
            return b;
        }

        private int[] shape(String name, TensorRef t) {
            long[] size = t.size();
            int[] shape = new int[size.length];
            long numel = 1;
            for (int i = 0; i < size.length; i++) {
                if (size[i] < 0 || size[i] > MAX_ARRAY) {
                    throw new TrilensException(where(name, t) + " has a negative or huge size");
                }
                shape[i] = (int) size[i];
                numel = size[i] == 0 ? 0 : Math.min(numel, MAX_ARRAY + 1L) * size[i];
                if (numel > MAX_ARRAY) {
                    throw new TrilensException(where(name, t) + " has more than " + MAX_ARRAY + " elements");
                }
            }
            return shape;
        }

        private String where(String name, TensorRef t) {
            return "checkpoint " + file + ": tensor '" + FileText.show(name) + "' (size " + Arrays.toString(t.size())
                    + ", stride " + Arrays.toString(t.stride()) + ", offset " + t.offset() + ")";
        }

        /** Reads the view t of bytes (its storage) into out[at..at+numel), converting its dtype to float. */
        private void materialize(String name, TensorRef t, byte[] bytes, float[] out, int at) {
            StorageRef s = t.storage();
            long[] size = t.size();
            long[] stride = t.stride();
            String where = where(name, t);
            if (stride.length != size.length) {
                throw new TrilensException(where + " has a stride of another rank than its size");
            }
            int numel = numel(shape(name, t));
            for (int i = 0; i < size.length; i++) {
                // a dimension of size 1 never steps, so torch lets its stride be anything
                if (stride[i] < 0 || size[i] > 1 && stride[i] > MAX_ARRAY) {
                    throw new TrilensException(where + " has a negative or huge stride");
                }
            }
            if (t.offset() < 0) {
                throw new TrilensException(where + " has a negative storage offset");
            }
            if (numel > 0) {
                // every term is below 2^62 and the sum stops growing past 2^62, so it cannot overflow
                long last = t.offset();
                for (int i = 0; i < size.length && last <= 1L << 62; i++) {
                    last += size[i] > 1 ? (size[i] - 1) * stride[i] : 0;
                }
                if (last >= s.numel()) {
                    throw new TrilensException(where + " needs " + (last < MAX_ARRAY ? String.valueOf(last + 1)
                            : "more than " + MAX_ARRAY) + " elements of storage '" + FileText.show(s.key())
                            + "', which holds only " + s.numel());
                }
            }
            ByteBuffer buf = ByteBuffer.wrap(bytes).order(order);
            long[] idx = new long[size.length];
            long pos = t.offset();
            for (int n = 0; n < numel; n++) {
                out[at + n] = element(buf, s.dtype(), (int) pos);
                // odometer over the logical index, innermost dimension fastest (row-major)
                for (int d = size.length - 1; d >= 0; d--) {
                    pos += stride[d];
                    if (++idx[d] < size[d]) {
                        break;
                    }
                    pos -= stride[d] * size[d];
                    idx[d] = 0;
                }
            }
        }
    }

    private static int numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return (int) n; // shape() has checked that it fits
    }

    /**
     * Writes the parameters as torch.save(model.state_dict()) would (without the buffers), so that
     * torch.load(path, weights_only=True) and model.load_state_dict(..., strict=False) accept it.
     */
    public static void write(Weights w, Path target) {
        String name = archiveName(target);
        PickleWriter pkl = new PickleWriter().proto(2);
        pkl.global("collections", "OrderedDict").emptyTuple().reduce().mark();
        List<ParamLayout.Param> params = w.layout.params();
        for (int i = 0; i < params.size(); i++) {
            ParamLayout.Param p = params.get(i);
            pkl.string(p.name());
            pkl.tensorV2("FloatStorage", String.valueOf(i), "cpu", p.size(), 0, toLongs(p.shape()),
                    contiguousStrides(p.shape()));
        }
        byte[] pickle = pkl.setitems().stop().toByteArray();
        AtomicFiles.write(target, out -> {
            ZipOutputStream zip = new ZipOutputStream(out);
            putStored(zip, name + "/data.pkl", pickle);
            putStored(zip, name + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
            for (int i = 0; i < params.size(); i++) {
                ParamLayout.Param p = params.get(i);
                ByteBuffer buf = ByteBuffer.allocate(4 * p.size()).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(w.data, p.offset(), p.size());
                putStored(zip, name + "/data/" + i, buf.array());
            }
            putStored(zip, name + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
            zip.finish();
        });
    }

    private static String findPrefix(ZipFile zip, String file) {
        List<String> found = new ArrayList<>();
        for (Enumeration<? extends ZipEntry> en = zip.entries(); en.hasMoreElements(); ) {
            String n = en.nextElement().getName();
            if (n.equals("data.pkl") || (n.endsWith("/data.pkl") && n.indexOf('/') == n.length() - 9)) {
                found.add(n);
            }
        }
        if (found.size() != 1) {
            throw new TrilensException("checkpoint " + file + (found.isEmpty() ? " has no data.pkl" : " has "
                    + found.size() + " data.pkl entries " + FileText.show(found.toString())) + ": expected a zip written by torch.save, with one "
                    + "folder holding data.pkl and data/0, data/1, ...");
        }
        return found.get(0).substring(0, found.get(0).length() - "data.pkl".length());
    }

    private static ByteOrder byteOrder(Reader r) throws IOException {
        ZipEntry e = r.zip.getEntry(r.prefix + "byteorder");
        if (e == null) {
            return ByteOrder.LITTLE_ENDIAN; // torch omitted it before 1.10, always writing little-endian
        }
        String s = new String(r.readEntry(e, 16), StandardCharsets.US_ASCII).trim();
        return switch (s) {
            case "little" -> ByteOrder.LITTLE_ENDIAN;
            case "big" -> ByteOrder.BIG_ENDIAN;
            default -> throw new TrilensException("checkpoint " + r.file + ": byteorder is '" + FileText.show(s)
                    + "', expected 'little' or 'big'");
        };
    }

    private static Map<String, TensorRef> unpickle(byte[] pkl, String file) {
        Object root;
        StateDictUnpickler unpickler = new StateDictUnpickler(file);
        try {
            root = unpickler.loads(pkl);
        } catch (TrilensException e) {
            throw e;
        } catch (IOException | RuntimeException | StackOverflowError e) {
            // razorvine reports a malformed stream as PickleException, or as the cast/stack error it ran into
            String why = e instanceof PickleException || e instanceof IOException ? e.getMessage() : e.toString();
            throw new TrilensException("checkpoint " + file + ": data.pkl is not a valid state dict pickle ("
                    + FileText.show(String.valueOf(why)) + ")", e);
        } finally {
            unpickler.close();
        }
        if (!(root instanceof Map<?, ?> map)) {
            throw new TrilensException("checkpoint " + file + " holds " + describe(root)
                    + ", expected a state dict: save it with torch.save(model.state_dict(), path)");
        }
        Map<String, TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            // the unpickler lets only strings be keys
            if (!(e.getKey() instanceof String key) || !(e.getValue() instanceof TensorRef t)) {
                throw new TrilensException("checkpoint " + file + ": entry '" + FileText.show(String.valueOf(e.getKey()))
                        + "' is " + describe(e.getValue()) + ", expected a tensor: save the model with "
                        + "torch.save(model.state_dict(), path)");
            }
            out.put(key, t);
        }
        return out;
    }

    private static String describe(Object o) {
        return o == null ? "None" : "a " + StateDictUnpickler.pyType(o);
    }

    static int elementSize(String dtype) {
        return switch (dtype) {
            case "float64", "int64" -> 8;
            case "float32", "int32" -> 4;
            case "float16", "bfloat16", "int16" -> 2;
            default -> 1;
        };
    }

    static float element(ByteBuffer b, String dtype, int i) {
        return switch (dtype) {
            case "float32" -> b.getFloat(4 * i);
            case "float64" -> (float) b.getDouble(8 * i);
            case "float16" -> halfToFloat(b.getShort(2 * i));
            case "bfloat16" -> Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
            case "int64" -> b.getLong(8 * i);
            case "int32" -> b.getInt(4 * i);
            case "int16" -> b.getShort(2 * i);
            case "uint8" -> b.get(i) & 0xff;
            case "int8" -> b.get(i);
            case "bool" -> b.get(i) != 0 ? 1f : 0f;
            default -> throw new IllegalStateException(dtype);
        };
    }

    /** IEEE 754 binary16 to float32, exact (Float.float16ToFloat arrived only in Java 20). */
    static float halfToFloat(short h) {
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            float v = mant * 0x1p-24f; // subnormal (or zero)
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    private static void putStored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        e.setCompressedSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
        e.setTime(315532800000L + 12 * 3600_000L); // fixed (1980-01-01 noon) so equal weights give equal files
        zip.putNextEntry(e);
        zip.write(data);
        zip.closeEntry();
    }

    /** torch names the zip's top folder after the file; any name works, but keep it a plain one. */
    private static String archiveName(Path target) {
        String n = target.getFileName() == null ? "" : target.getFileName().toString();
        int dot = n.lastIndexOf('.');
        n = (dot > 0 ? n.substring(0, dot) : n).replaceAll("[^A-Za-z0-9_-]", "_");
        return n.isEmpty() ? "archive" : n;
    }

    private static long[] toLongs(int[] a) {
        return Arrays.stream(a).asLongStream().toArray();
    }

    private static long[] contiguousStrides(int[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }
}
