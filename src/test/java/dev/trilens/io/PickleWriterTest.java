package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import net.razorvine.pickle.Unpickler;
import org.junit.jupiter.api.Test;

/**
 * The opcodes model.pt is written with, read back by razorvine's Unpickler (a pickle reader trilens did not write)
 * and, for integers, compared with the bytes Python's own pickle module writes.
 */
class PickleWriterTest {

    private static Object unpickle(PickleWriter w) throws IOException {
        return new Unpickler().loads(w.stop().toByteArray());
    }

    @Test
    void integersTakeTheOpcodesPythonsPickleChooses() {
        // python3 -c "import pickle; print(pickle.dumps(v, protocol=2)[2:-1].hex())"
        Map<Long, String> python = new LinkedHashMap<>();
        python.put(0L, "4b00");
        python.put(255L, "4bff");
        python.put(256L, "4d0001");
        python.put(65535L, "4dffff");
        python.put(65536L, "4a00000100");
        python.put(-1L, "4affffffff");
        python.put((long) Integer.MIN_VALUE, "4a00000080");
        python.put((long) Integer.MAX_VALUE, "4affffff7f");
        python.forEach((v, hex) -> assertThat(HexFormat.of().formatHex(new PickleWriter().integer(v).toByteArray()))
                .as("%d", v).isEqualTo(hex));
    }

    @Test
    void everyIntegerReadsBackAsItself() throws IOException {
        long[] values = {0, 255, 256, 65535, 65536, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 1L << 31,
            -(1L << 31) - 1, 1L << 40, Long.MAX_VALUE, Long.MIN_VALUE};
        for (long v : values) {
            Object back = unpickle(new PickleWriter().proto(2).integer(v));
            assertThat(((Number) back).longValue()).as("%d", v).isEqualTo(v);
        }
    }

    @Test
    void stringsBooleansNoneAndTuplesReadBack() throws IOException {
        // 400 bytes of UTF-8: the length takes two bytes of BINUNICODE's four
        String long400 = "\u00e9".repeat(200);
        assertThat(HexFormat.of().formatHex(new PickleWriter().string(long400).toByteArray(), 0, 5))
                .isEqualTo("5890010000");
        Object back = unpickle(new PickleWriter().proto(2).mark().string(long400).bool(true).bool(false).none()
                .intTuple().intTuple(1, 70_000, -3).tuple());
        assertThat(back).isEqualTo(new Object[] {long400, true, false, null, new Object[0],
            new Object[] {1, 70_000, -3}});
        Object dict = unpickle(new PickleWriter().proto(2).emptyDict().string("k").integer(5).setitem());
        assertThat(dict).isEqualTo(Map.of("k", 5));
    }

    @Test
    void aTensorIsTheCallTorchSaveWrites() throws IOException {
        Object sd = new StateDictUnpickler("t.pt").loads(new PickleWriter().proto(2)
                .global("collections", "OrderedDict").emptyTuple().reduce()
                .string("w").tensorV2("HalfStorage", "7", "cpu", 12, 2, new long[] {2, 5}, new long[] {5, 1})
                .setitem().stop().toByteArray());
        assertThat(sd).isInstanceOf(Map.class);
        StateDictUnpickler.TensorRef t = (StateDictUnpickler.TensorRef) ((Map<?, ?>) sd).get("w");
        assertThat(t.storage()).isEqualTo(new StateDictUnpickler.StorageRef("float16", "7", 12));
        assertThat(t.offset()).isEqualTo(2);
        assertThat(t.size()).containsExactly(2, 5);
        assertThat(t.stride()).containsExactly(5, 1);

        // the persistent id on its own: BINPERSID turns the tuple into a reference to data/<key>
        Object storage = new StateDictUnpickler("s.pt").loads(new PickleWriter().proto(2).mark().string("storage")
                .global("torch", "LongStorage").string("3").string("cpu").integer(6).tuple().binpersid().stop()
                .toByteArray());
        assertThat(storage).isEqualTo(new StateDictUnpickler.StorageRef("int64", "3", 6));
    }
}
