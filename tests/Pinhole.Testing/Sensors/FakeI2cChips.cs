using System.Buffers.Binary;
using System.Device.I2c;

namespace Pinhole.Testing.Sensors;

/// <summary>
/// An I2C chip with 8-bit registers in memory, as Bosch sensors have: a write sets the register
/// pointer (first byte) and stores the rest from there; a read returns bytes from the pointer on,
/// auto-incrementing, as the chip does.
/// </summary>
public class FakeRegisterChip(int bus, int address) : I2cDevice
{
    /// <summary>The register file.</summary>
    public byte[] Registers { get; } = new byte[256];

    /// <summary>Every byte sequence written (pointer first), for assertions on what the binding configured.</summary>
    public List<byte[]> Writes { get; } = [];

    /// <summary>Whether the binding disposed its bus.</summary>
    public bool Disposed { get; private set; }

    private int _pointer;

    /// <inheritdoc />
    public override I2cConnectionSettings ConnectionSettings { get; } = new(bus, address);

    /// <inheritdoc />
    public override byte ReadByte() => Registers[_pointer++ & 0xFF];

    /// <inheritdoc />
    public override void Read(Span<byte> buffer)
    {
        for (var i = 0; i < buffer.Length; i++) buffer[i] = ReadByte();
    }

    /// <inheritdoc />
    public override void WriteByte(byte value) => Write([value]);

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Writes.Add(buffer.ToArray());
        if (buffer.IsEmpty) return;
        _pointer = buffer[0];
        foreach (var b in buffer[1..]) OnRegisterWritten(_pointer & 0xFF, Registers[_pointer++ & 0xFF] = b);
    }

    /// <inheritdoc />
    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }

    /// <summary>Called after each register byte written; a chip model reacts here.</summary>
    protected virtual void OnRegisterWritten(int register, byte value)
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }
}

/// <summary>
/// A Bosch BME280 (chip id 0x60) or BMP280 (0x58) holding the datasheet's calibration example
/// (BMP280 datasheet section 3.12 / 8.1: dig_T1 27504 … dig_P9 6000) and raw ADC values
/// adc_T 519888, adc_P 415148 — 25.08 °C and 1006.53 hPa — plus humidity calibration
/// dig_H1..H6 = 75, 362, 0, 313, 50, 30 and adc_H 30000 (55.0 %RH by the datasheet's formula).
/// </summary>
public sealed class FakeBmx280 : FakeRegisterChip
{
    /// <summary>Temperature the register map encodes, °C (datasheet example).</summary>
    public const double ExpectedTemperature = 25.08247793081682;

    /// <summary>Pressure the register map encodes, hPa (datasheet example).</summary>
    public const double ExpectedPressure = 1006.5326677582515;

    /// <summary>Relative humidity the register map encodes, % (BME280 only).</summary>
    public const double ExpectedHumidity = 55.00071477602678;

    /// <summary>Creates the chip; <paramref name="humidity"/> makes it a BME280, else a BMP280.</summary>
    public FakeBmx280(bool humidity, int bus = 1, int address = 0x76)
        : base(bus, address)
    {
        Registers[0xD0] = humidity ? (byte)0x60 : (byte)0x58;
        ushort[] t = [27504, 26435, unchecked((ushort)-1000)];
        ushort[] p = [36477, unchecked((ushort)-10685), 3024, 2855, 140, unchecked((ushort)-7), 15500, unchecked((ushort)-14600), 6000];
        var at = 0x88;
        foreach (var v in t.Concat(p))
        {
            BinaryPrimitives.WriteUInt16LittleEndian(Registers.AsSpan(at), v);
            at += 2;
        }
        if (humidity)
        {
            Registers[0xA1] = 75;                                               // dig_H1
            BinaryPrimitives.WriteInt16LittleEndian(Registers.AsSpan(0xE1), 362); // dig_H2
            Registers[0xE3] = 0;                                                // dig_H3
            const int h4 = 313, h5 = 50;
            Registers[0xE4] = (byte)(h4 >> 4);                                  // dig_H4 [11:4]
            Registers[0xE5] = (byte)((h4 & 0x0F) | ((h5 & 0x0F) << 4));         // dig_H4 [3:0], dig_H5 [3:0]
            Registers[0xE6] = (byte)(h5 >> 4);                                  // dig_H5 [11:4]
            Registers[0xE7] = 30;                                               // dig_H6
            Registers[0xFD] = 30000 >> 8;                                       // hum_msb
            Registers[0xFE] = 30000 & 0xFF;                                     // hum_lsb
        }
        Set20Bit(0xF7, 415148); // press_msb, lsb, xlsb
        Set20Bit(0xFA, 519888); // temp_msb, lsb, xlsb
    }

    private void Set20Bit(int register, int adc)
    {
        Registers[register] = (byte)(adc >> 12);
        Registers[register + 1] = (byte)(adc >> 4);
        Registers[register + 2] = (byte)((adc & 0x0F) << 4);
    }
}

/// <summary>
/// A TI ADS1115: 16-bit registers (conversion 0, config 1), big-endian. Writing the config with
/// the OS bit starts a single-shot conversion of the input its MUX bits select, which completes at
/// once with the raw value set in <see cref="Inputs"/>.
/// </summary>
public sealed class FakeAds1115(int bus = 1, int address = 0x48) : I2cDevice
{
    private readonly ushort[] _registers = new ushort[4];
    private int _pointer;

    /// <summary>Raw conversion results of AIN0..AIN3 (single-ended).</summary>
    public short[] Inputs { get; } = new short[4];

    /// <summary>Conversions done, by input.</summary>
    public int[] Conversions { get; } = new int[4];

    /// <inheritdoc />
    public override I2cConnectionSettings ConnectionSettings { get; } = new(bus, address);

    /// <inheritdoc />
    public override byte ReadByte() => throw new NotSupportedException("the ADS1115 is read in 16-bit words");

    /// <inheritdoc />
    public override void Read(Span<byte> buffer)
    {
        Span<byte> word = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(word, _registers[_pointer]);
        word[..Math.Min(2, buffer.Length)].CopyTo(buffer);
    }

    /// <inheritdoc />
    public override void WriteByte(byte value) => Write([value]);

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _pointer = buffer[0] & 0x03;
        if (buffer.Length < 3) return;
        var value = BinaryPrimitives.ReadUInt16BigEndian(buffer[1..]);
        if (_pointer == 1 && (value & 0x8000) != 0)
        {
            var mux = (value >> 12) & 0x07;
            if (mux >= 4)
            {
                _registers[0] = unchecked((ushort)Inputs[mux - 4]);
                Conversions[mux - 4]++;
            }
        }
        // The OS bit reads 1 when no conversion is running: always, here.
        _registers[_pointer] = _pointer == 1 ? (ushort)(value | 0x8000) : value;
    }

    /// <inheritdoc />
    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }
}

/// <summary>
/// A Sensirion SHT3x: a 16-bit command (0x24xx: single-shot measurement without clock stretching) makes the next
/// 6-byte read return temperature and humidity words, each followed by its CRC-8 (poly 0x31, init
/// 0xFF, datasheet section 4.12). <see cref="CorruptCrc"/> flips the CRC to model a bus error.
/// </summary>
public sealed class FakeSht3x(int bus = 1, int address = 0x44) : I2cDevice
{
    private ushort _lastCommand;

    /// <summary>Raw temperature word: T = -45 + 175 * raw / 65535 °C.</summary>
    public ushort RawTemperature { get; set; } = 0x6666; // 25.0 °C

    /// <summary>Raw humidity word: RH = 100 * raw / 65535 %.</summary>
    public ushort RawHumidity { get; set; } = 0x8000;    // 50.0 %

    /// <summary>Answer with a wrong temperature CRC.</summary>
    public bool CorruptCrc { get; set; }

    /// <summary>Commands received, in order.</summary>
    public List<ushort> Commands { get; } = [];

    /// <inheritdoc />
    public override I2cConnectionSettings ConnectionSettings { get; } = new(bus, address);

    /// <inheritdoc />
    public override byte ReadByte() => throw new NotSupportedException("the SHT3x answers measurements in 6 bytes");

    /// <inheritdoc />
    public override void Read(Span<byte> buffer)
    {
        if (_lastCommand >> 8 != 0x24 || buffer.Length != 6)
            throw new IOException("SHT3x NACK: no measurement was started");
        BinaryPrimitives.WriteUInt16BigEndian(buffer, RawTemperature);
        buffer[2] = (byte)(Crc8(buffer[..2]) ^ (CorruptCrc ? 0xFF : 0));
        BinaryPrimitives.WriteUInt16BigEndian(buffer[3..], RawHumidity);
        buffer[5] = Crc8(buffer[3..5]);
    }

    /// <inheritdoc />
    public override void WriteByte(byte value) => throw new NotSupportedException("SHT3x commands are 16 bits");

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _lastCommand = BinaryPrimitives.ReadUInt16BigEndian(buffer);
        Commands.Add(_lastCommand);
    }

    /// <inheritdoc />
    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }

    /// <summary>The SHT3x CRC-8; 0xBEEF gives 0x92 (datasheet example).</summary>
    public static byte Crc8(ReadOnlySpan<byte> data)
    {
        byte crc = 0xFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
                crc = (crc & 0x80) != 0 ? (byte)((crc << 1) ^ 0x31) : (byte)(crc << 1);
        }
        return crc;
    }
}
