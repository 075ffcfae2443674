/// Build logs arrive as bytes in chunks; a chunk may end inside a multi-byte character.
enum LogText {
    /// How many of `bytes` end on a character boundary: all of them, or all but the start of a
    /// character cut off at the end (that one comes whole with the next chunk).
    static func completePrefix(_ bytes: [UInt8]) -> Int {
        var lead = bytes.count - 1
        while lead >= 0, bytes.count - lead <= 3, bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0, bytes[lead] >= 0xC0 else { return bytes.count }
        let length = bytes[lead] >= 0xF0 ? 4 : bytes[lead] >= 0xE0 ? 3 : 2
        return bytes.count - lead < length ? lead : bytes.count
    }
}
