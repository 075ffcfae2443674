import Testing
import SlipwayCore

@Test func hexRoundTripsAndRefusesWhatIsNotHex() {
    #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
    #expect(Hex.decode("000fA5ff") == [0x00, 0x0f, 0xa5, 0xff])
    #expect(Hex.decode("") == [])
    for bad in ["abc", "zz", "0g", " 0"] { #expect(Hex.decode(bad) == nil, "\(bad)") }
}
