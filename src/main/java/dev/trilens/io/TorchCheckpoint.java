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

    /** data.pkl of a state dict is a few KB per tensor; far more means it is not one. */
    private static final int MAX_PICKLE_BYTES = 64 << 20;
    private static final int MAX_ARRAY = Integer.MAX_VALUE - 8;

    private TorchCheckpoint() {
    }

    /** Every tensor of the state dict in file order, buffers included. */
    public static Map<String, Tensor> readStateDict(Path path) {
        Checkpoints.requireFile(path);
        String file = path.toString();
        try (ZipFile zip = new ZipFile(path.toFile())) {
            String prefix = findPrefix(zip, file);
            ByteOrder order = byteOrder(zip, prefix, file);
            byte[] pkl = readEntry(zip, zip.getEntry(prefix + "data.pkl"), file, MAX_PICKLE_BYTES);
            Map<String, TensorRef> refs = unpickle(pkl, file);
            Map<String, byte[]> storages = new HashMap<>();
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (Map.Entry<String, TensorRef> e : refs.entrySet()) {
                StorageRef s = e.getValue().storage();
                byte[] bytes = storages.get(s.key());
                if (bytes == null) {
                    bytes = readStorage(zip, prefix, s, file);
                    storages.put(s.key(), bytes);
                } else if (s.numel() < 0 || s.numel() > bytes.length / elementSize(s.dtype())) {
                    throw new TrilensException("checkpoint " + file + ": storage '" + s.key() + "' holds "
                            + bytes.length + " bytes, expected " + s.numel() + " " + s.dtype() + " values");
                }
                out.put(e.getKey(), materialize(file, e.getKey(), e.getValue(), bytes, order));
            }
            return out;
        } catch (ZipException | EOFException e) {
            String why = e.getMessage() != null ? e.getMessage() : "an entry ends before its stated size";
            throw new TrilensException("checkpoint " + file + " is not a readable zip archive (" + why
                    + "): expected a PyTorch checkpoint written by torch.save, complete and uncorrupted", e);
        } catch (IOException e) {
            throw new TrilensException("cannot read checkpoint " + file + ": " + AtomicFiles.describe(e), e);
        }
    }

    /** The model in the checkpoint, its config inferred from the keys and shapes, every parameter checked. */
    public static Weights load(Path path) {
        Map<String, Tensor> tensors = readStateDict(path);
        Map<String, StateDictSchema.Entry> entries = new LinkedHashMap<>();
        tensors.forEach((k, t) -> entries.put(k, new StateDictSchema.Entry(t.dtype(), t.shape())));
        ModelConfig cfg = StateDictSchema.resolve(path.toString(), entries, null);
        Weights w = new Weights(cfg);
        for (ParamLayout.Param p : w.layout.params()) {
            System.arraycopy(tensors.get(p.name()).values(), 0, w.data, p.offset(), p.size());
        }
        return w;
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
                    + found.size() + " data.pkl entries " + found) + ": expected a zip written by torch.save, with one "
                    + "folder holding data.pkl and data/0, data/1, ...");
        }
        return found.get(0).substring(0, found.get(0).length() - "data.pkl".length());
    }

    private static ByteOrder byteOrder(ZipFile zip, String prefix, String file) throws IOException {
        ZipEntry e = zip.getEntry(prefix + "byteorder");
        if (e == null) {
            return ByteOrder.LITTLE_ENDIAN; // torch omitted it before 1.10, always writing little-endian
        }
        String s = new String(readEntry(zip, e, file, 16), StandardCharsets.US_ASCII).trim();
        return switch (s) {
            case "little" -> ByteOrder.LITTLE_ENDIAN;
            case "big" -> ByteOrder.BIG_ENDIAN;
            default -> throw new TrilensException("checkpoint " + file + ": byteorder is '" + s
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
        } catch (IOException | RuntimeException e) {
            // razorvine reports a malformed stream as PickleException, or as the cast/stack error it ran into
            String why = e instanceof PickleException || e instanceof IOException ? e.getMessage() : e.toString();
            throw new TrilensException("checkpoint " + file + ": data.pkl is not a valid state dict pickle (" + why
                    + ")", e);
        } finally {
            unpickler.close();
        }
        if (!(root instanceof Map<?, ?> map)) {
            throw new TrilensException("checkpoint " + file + " holds " + describe(root)
                    + ", expected a state dict: save it with torch.save(model.state_dict(), path)");
        }
        Map<String, TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            if (!(e.getKey() instanceof String key) || !(e.getValue() instanceof TensorRef t)) {
                throw new TrilensException("checkpoint " + file + ": entry '" + e.getKey() + "' is "
                        + describe(e.getValue()) + ", expected a tensor: save the model with "
                        + "torch.save(model.state_dict(), path)");
            }
            out.put(key, t);
        }
        return out;
    }

    private static String describe(Object o) {
        if (o instanceof Map) {
            return "a dict";
        }
        return o == null ? "None" : "a " + o.getClass().getSimpleName();
    }

    private static byte[] readStorage(ZipFile zip, String prefix, StorageRef s, String file) throws IOException {
        String name = prefix + "data/" + s.key();
        ZipEntry e = zip.getEntry(name);
        if (e == null) {
            throw new TrilensException("checkpoint " + file + " has no entry '" + name + "' for storage '" + s.key()
                    + "' referenced by data.pkl");
        }
        long need = s.numel() * elementSize(s.dtype()); // cannot overflow: numel is checked first
        if (s.numel() < 0 || s.numel() > MAX_ARRAY || need > MAX_ARRAY || e.getSize() < need) {
            throw new TrilensException("checkpoint " + file + ": '" + name + "' holds " + e.getSize()
                    + " bytes, expected " + s.numel() + " " + s.dtype() + " values (" + need + " bytes)");
        }
        return readEntry(zip, e, file, MAX_ARRAY);
    }

    private static byte[] readEntry(ZipFile zip, ZipEntry e, String file, int limit) throws IOException {
        long size = e.getSize();
        if (size > limit) {
            throw new TrilensException("checkpoint " + file + ": '" + e.getName() + "' is " + size
                    + " bytes, too large for a state dict");
        }
        byte[] b;
        try (InputStream in = zip.getInputStream(e)) {
            b = in.readNBytes((int) Math.max(size, 0));
        }
        // ZipFile does not check the CRC of stored entries, and torch stores every entry uncompressed
        CRC32 crc = new CRC32();
        crc.update(b);
        if (b.length != size || (e.getCrc() != -1 && crc.getValue() != e.getCrc())) {
            throw new TrilensException("checkpoint " + file + ": entry '" + e.getName() + "' is corrupted "
                    + "(size or CRC does not match the zip directory): expected an intact torch.save file");
        }
        return b;
    }

    private static Tensor materialize(String file, String name, TensorRef t, byte[] bytes, ByteOrder order) {
        StorageRef s = t.storage();
        long[] size = t.size();
        long[] stride = t.stride();
        String where = "checkpoint " + file + ": tensor '" + name + "' (size " + Arrays.toString(size) + ", stride "
                + Arrays.toString(stride) + ", offset " + t.offset() + ")";
        if (stride.length != size.length) {
            throw new TrilensException(where + " has a stride of another rank than its size");
        }
        int[] shape = new int[size.length];
        long numel = 1;
        long last = t.offset();
        for (int i = 0; i < size.length; i++) {
            if (size[i] < 0 || stride[i] < 0 || size[i] > MAX_ARRAY) {
                throw new TrilensException(where + " has a negative or huge size or stride");
            }
            shape[i] = (int) size[i];
            numel = Math.multiplyExact(numel, size[i]);
            if (numel > MAX_ARRAY) {
                throw new TrilensException(where + " has more than " + MAX_ARRAY + " elements");
            }
        }
        if (t.offset() < 0) {
            throw new TrilensException(where + " has a negative storage offset");
        }
        if (numel > 0) {
            for (int i = 0; i < size.length; i++) {
                last = Math.addExact(last, Math.multiplyExact(size[i] - 1, stride[i]));
            }
            if (last >= s.numel()) {
                throw new TrilensException(where + " needs " + (last + 1) + " elements of storage '" + s.key()
                        + "', which holds only " + s.numel());
            }
        }
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(order);
        float[] values = new float[(int) numel];
        long[] idx = new long[size.length];
        long pos = t.offset();
        for (int n = 0; n < values.length; n++) {
            values[n] = element(buf, s.dtype(), (int) pos);
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
        return new Tensor(s.dtype(), shape, values);
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
