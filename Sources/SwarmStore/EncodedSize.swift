import Foundation
import SwiftProtobuf

extension SwiftProtobuf.Message {
    /// The length of the message's binary encoding, computed in one pass and without
    /// encoding it. (Encoding a message recomputes the size of every nested message at each
    /// level; a transaction measures each change it records, so this is on the write path.)
    /// Extension fields are not counted: the store's messages have none.
    func encodedSize() -> Int {
        var sizer = EncodedSizeVisitor()
        try? traverse(visitor: &sizer)
        return sizer.size
    }
}

/// Adds up the binary-encoded size of the fields it visits.
struct EncodedSizeVisitor: SwiftProtobuf.Visitor {
    var size = 0

    static func varint(_ v: UInt64) -> Int { v == 0 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7 }
    static func tag(_ field: Int) -> Int { varint(UInt64(field) << 3) }
    static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    private mutating func delimited(_ field: Int, _ length: Int) {
        size += Self.tag(field) + Self.varint(UInt64(length)) + length
    }

    // Scalars.
    mutating func visitSingularFloatField(value: Float, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 4 }
    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 8 }
    mutating func visitSingularInt32Field(value: Int32, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(UInt64(bitPattern: Int64(value)))
    }
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(UInt64(bitPattern: value))
    }
    mutating func visitSingularUInt32Field(value: UInt32, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(UInt64(value))
    }
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(value)
    }
    mutating func visitSingularSInt32Field(value: Int32, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(Self.zigzag(Int64(value)))
    }
    mutating func visitSingularSInt64Field(value: Int64, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(Self.zigzag(value))
    }
    mutating func visitSingularFixed32Field(value: UInt32, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 4 }
    mutating func visitSingularFixed64Field(value: UInt64, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 8 }
    mutating func visitSingularSFixed32Field(value: Int32, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 4 }
    mutating func visitSingularSFixed64Field(value: Int64, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 8 }
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws { size += Self.tag(fieldNumber) + 1 }
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws { delimited(fieldNumber, value.utf8.count) }
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws { delimited(fieldNumber, value.count) }
    mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {
        size += Self.tag(fieldNumber) + Self.varint(UInt64(bitPattern: Int64(value.rawValue)))
    }
    mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
        delimited(fieldNumber, value.encodedSize())
    }
    mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
        size += 2 * Self.tag(fieldNumber) + value.encodedSize()
    }

    // Packed repeated scalars: one length-delimited field.
    private mutating func packed<T>(_ values: [T], _ field: Int, _ each: (T) -> Int) {
        guard !values.isEmpty else { return }
        delimited(field, values.reduce(0) { $0 + each($1) })
    }
    mutating func visitPackedFloatField(value: [Float], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 4 } }
    mutating func visitPackedDoubleField(value: [Double], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 8 } }
    mutating func visitPackedInt32Field(value: [Int32], fieldNumber: Int) throws {
        packed(value, fieldNumber) { Self.varint(UInt64(bitPattern: Int64($0))) }
    }
    mutating func visitPackedInt64Field(value: [Int64], fieldNumber: Int) throws {
        packed(value, fieldNumber) { Self.varint(UInt64(bitPattern: $0)) }
    }
    mutating func visitPackedUInt32Field(value: [UInt32], fieldNumber: Int) throws { packed(value, fieldNumber) { Self.varint(UInt64($0)) } }
    mutating func visitPackedUInt64Field(value: [UInt64], fieldNumber: Int) throws { packed(value, fieldNumber) { Self.varint($0) } }
    mutating func visitPackedSInt32Field(value: [Int32], fieldNumber: Int) throws {
        packed(value, fieldNumber) { Self.varint(Self.zigzag(Int64($0))) }
    }
    mutating func visitPackedSInt64Field(value: [Int64], fieldNumber: Int) throws {
        packed(value, fieldNumber) { Self.varint(Self.zigzag($0)) }
    }
    mutating func visitPackedFixed32Field(value: [UInt32], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 4 } }
    mutating func visitPackedFixed64Field(value: [UInt64], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 8 } }
    mutating func visitPackedSFixed32Field(value: [Int32], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 4 } }
    mutating func visitPackedSFixed64Field(value: [Int64], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 8 } }
    mutating func visitPackedBoolField(value: [Bool], fieldNumber: Int) throws { packed(value, fieldNumber) { _ in 1 } }
    mutating func visitPackedEnumField<E: SwiftProtobuf.Enum>(value: [E], fieldNumber: Int) throws {
        packed(value, fieldNumber) { Self.varint(UInt64(bitPattern: Int64($0.rawValue))) }
    }

    // Maps: one length-delimited entry message (key = 1, value = 2) per pair.
    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type,
        value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        try entries(KeyType.self, value, fieldNumber) { try ValueType.visitSingular(value: $1, fieldNumber: 2, with: &$0) }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type,
        value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        try entries(KeyType.self, value, fieldNumber) { try $0.visitSingularEnumField(value: $1, fieldNumber: 2) }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        try entries(KeyType.self, value, fieldNumber) { try $0.visitSingularMessageField(value: $1, fieldNumber: 2) }
    }

    /// Sizes each pair of a map as its entry message; `visitValue` visits the value.
    private mutating func entries<KeyType: MapKeyType, Value>(
        _ key: KeyType.Type, _ map: [KeyType.BaseType: Value], _ fieldNumber: Int,
        _ visitValue: (inout EncodedSizeVisitor, Value) throws -> Void
    ) throws {
        for (k, v) in map {
            var entry = EncodedSizeVisitor()
            try KeyType.visitSingular(value: k, fieldNumber: 1, with: &entry)
            try visitValue(&entry, v)
            delimited(fieldNumber, entry.size)
        }
    }

    mutating func visitExtensionFields(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}
    mutating func visitExtensionFieldsAsMessageSet(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}
    mutating func visitUnknown(bytes: Data) throws { size += bytes.count }
}
