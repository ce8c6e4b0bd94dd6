"""Word lists of the synthetic English corpus (written for this project).

Each list is one category of the sentence grammar in
:mod:`espnet_distill.corpora.synth_en`. Nouns take regular plurals unless listed
in ``IRREGULAR_PLURALS``; verbs are regular (past "-ed", third person "-s",
"-ing") unless listed in ``IRREGULAR_VERBS``.
"""

NOUNS = """
apple table chair window garden river mountain forest village city road bridge
house door kitchen teacher doctor farmer baker painter singer writer driver pilot
sailor soldier student child friend neighbor stranger brother sister mother father
uncle aunt cousin dog cat horse cow sheep goat bird duck chicken rabbit fox wolf
bear lion tiger monkey snake fish whale dolphin turtle frog mouse spider bee
butterfly flower tree leaf branch root seed grass field farm barn fence gate wall
roof floor stair lamp candle clock watch phone radio camera computer letter book
paper pencil pen notebook desk shelf drawer basket bag box bottle cup glass plate
bowl spoon fork knife pot pan oven stove sink bucket rope ladder hammer nail
wheel engine truck car bus train boat ship plane bicycle ticket station airport
harbor market shop bank library school museum hospital church castle tower palace
garage hotel office factory theater stadium island beach ocean lake pond valley
hill desert cave canyon meadow storm cloud rain snow wind thunder sunset morning
evening night winter summer autumn spring holiday birthday party wedding dinner
breakfast lunch supper bread butter cheese cake cookie soup salad rice potato
tomato carrot onion pepper lemon orange banana cherry grape melon peach pear
coffee tea milk juice water sugar salt honey jacket shirt dress coat hat scarf
glove boot shoe sock button pocket blanket pillow carpet curtain mirror picture
painting song story poem secret question answer problem idea plan dream memory
message signal journey adventure lesson meeting concert game puzzle toy ball kite
drum guitar piano violin trumpet flute whistle bell coin wallet key lock map
compass flag tent fire smoke stone rock sand shell feather nest egg island corner
street avenue path trail tunnel planet star moon comet rocket engineer scientist
artist actor dancer farmer captain king queen prince princess giant dragon wizard
robot machine tool garden helmet shield sword arrow treasure crown ring necklace
jewel candle window blanket engine pillow lantern harvest valley season minute
hour week month year century neighbor village
"""

IRREGULAR_PLURALS = {
    "child": "children", "mouse": "mice", "sheep": "sheep", "fish": "fish", "knife": "knives",
    "leaf": "leaves", "wolf": "wolves", "shelf": "shelves", "potato": "potatoes",
    "tomato": "tomatoes", "person": "people", "woman": "women", "man": "men",
}

# regular verbs (transitive use: "<subj> <verb> <object>")
VERBS = """
paint clean open close watch visit help carry follow push pull wash fix count
collect deliver borrow cook bake climb cross enjoy fill greet guard hunt jump kick
land lift mark miss move name order pack park pick plant play point print reach
repair rescue return save search share shout sign test touch trust turn visit walk
want warn water welcome wish wrap answer arrange ask attach attack call check chase
cover discover explain finish heat join kiss knock learn listen look mention paint
pour pray prepare protect remember remind report rest roll rush serve sort start
surprise talk thank train travel treat wait wander weigh whisper wonder work yell
bounce notice damage dance decorate describe explore invite observe polish promise
recognize release replace scare smile taste trace balance borrow hurry copy carry
study worry empty marry bury
"""

# irregular verbs: base -> (past, third person, -ing)
IRREGULAR_VERBS = {
    "see": ("saw", "sees", "seeing"), "find": ("found", "finds", "finding"),
    "bring": ("brought", "brings", "bringing"), "buy": ("bought", "buys", "buying"),
    "catch": ("caught", "catches", "catching"), "build": ("built", "builds", "building"),
    "draw": ("drew", "draws", "drawing"), "hold": ("held", "holds", "holding"),
    "keep": ("kept", "keeps", "keeping"), "leave": ("left", "leaves", "leaving"),
    "lose": ("lost", "loses", "losing"), "make": ("made", "makes", "making"),
    "meet": ("met", "meets", "meeting"), "read": ("read", "reads", "reading"),
    "sell": ("sold", "sells", "selling"), "send": ("sent", "sends", "sending"),
    "take": ("took", "takes", "taking"), "teach": ("taught", "teaches", "teaching"),
    "throw": ("threw", "throws", "throwing"), "write": ("wrote", "writes", "writing"),
    "drive": ("drove", "drives", "driving"), "eat": ("ate", "eats", "eating"),
    "feed": ("fed", "feeds", "feeding"), "hide": ("hid", "hides", "hiding"),
    "forget": ("forgot", "forgets", "forgetting"), "steal": ("stole", "steals", "stealing"),
    "shake": ("shook", "shakes", "shaking"), "choose": ("chose", "chooses", "choosing"),
    "break": ("broke", "breaks", "breaking"), "wear": ("wore", "wears", "wearing"),
    "sing": ("sang", "sings", "singing"), "stop": ("stopped", "stops", "stopping"),
    "drop": ("dropped", "drops", "dropping"), "grab": ("grabbed", "grabs", "grabbing"),
    "hug": ("hugged", "hugs", "hugging"), "plan": ("planned", "plans", "planning"),
}

ADJECTIVES = """
big small tall short long old young new ancient modern happy sad angry calm brave
quiet loud bright dark heavy light warm cold hot cool wet dry clean dirty empty full
fast slow strong weak rich poor busy lazy clever gentle kind cruel proud shy funny
serious strange famous hidden secret broken golden silver wooden green blue red
yellow purple orange white black brown gray pink soft hard smooth rough sharp round
square narrow wide deep shallow sweet bitter fresh tired hungry thirsty sleepy
lucky careful curious friendly honest polite rapid distant nearby foreign local
little huge tiny giant pretty ugly wild tame noisy silent sunny cloudy rainy windy
snowy frozen simple complex early late final first second third
"""

ADVERBS = """
quickly slowly quietly loudly carefully happily sadly gently suddenly finally
always never often sometimes rarely easily barely nearly already soon later
together alone again twice early yesterday today tomorrow
"""

NAMES = """
alice bob carol david emma frank grace henry irene jack karen leo maria nathan
olivia peter quinn rachel simon tina victor wendy xavier yvonne zach amy ben chloe
daniel ella felix george hannah isaac julia kevin laura martin nora oscar paula
ryan sophie thomas ursula vincent william
"""

PLACES = """
london paris berlin madrid rome vienna prague dublin lisbon athens oslo helsinki
warsaw cairo tokyo sydney toronto boston chicago denver seattle dallas miami
"""

DAYS = "monday tuesday wednesday thursday friday saturday sunday"

PREPOSITIONS = "near behind under above beside inside outside across along around past toward"

NUMBERS = "two three four five six seven eight nine ten eleven twelve twenty"

FUNCTION_WORDS = """
the a an and but or because while after before when then to of in on at with
from by for did does do not was were is are will could should would might may
""".split()


def words(block: str) -> list[str]:
    """Unique words of a whitespace-separated block, in first-seen order."""
    seen: dict[str, None] = {}
    for w in block.split():
        seen.setdefault(w, None)
    return list(seen)
