"""The 178-symbol phoneme table of the released StyleTTS2 models.

A token id is the symbol's position in `SYMBOLS`; the embedding tables of every pretrained text
encoder and PL-BERT are laid out in this order, so it must never change. Index 0 (`$`) is the pad
token. The apostrophe appears twice in the table (ids 174 and 176, with U+0329 COMBINING VERTICAL
LINE BELOW between them); like upstream, lookup maps it to the later position, 176, and id 174 is
never produced.
"""

PAD = "$"
PUNCTUATION = ';:,.!?¡¿—…"«»“” '
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LETTERS_IPA = (
    "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃ"
    "ˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘'̩'ᵻ"
)

SYMBOLS: tuple[str, ...] = (PAD, *PUNCTUATION, *LETTERS, *LETTERS_IPA)
N_SYMBOLS = len(SYMBOLS)

# Built in table order, so a repeated symbol keeps its last position (the apostrophe -> 176).
SYMBOL_TO_ID: dict[str, int] = {}
for _index, _symbol in enumerate(SYMBOLS):
    SYMBOL_TO_ID[_symbol] = _index
del _index, _symbol

PAD_ID = SYMBOL_TO_ID[PAD]
SPACE_ID = SYMBOL_TO_ID[" "]

assert N_SYMBOLS == 178 and PAD_ID == 0 and SPACE_ID == 16
