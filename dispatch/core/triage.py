"""The project's own open triage card set (MPDS itself is licensed): chief complaint -> priority and care.

Each card gives the default response level, the unit capability it needs and the hospital capability the
patient is likely to need. A dispatcher may raise or lower the priority at intake; the card stays recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.core.errors import InvalidInput
from dispatch.core.types import Capability, Priority

E, D, C, B, A, OM = (Priority.ECHO, Priority.DELTA, Priority.CHARLIE, Priority.BRAVO, Priority.ALPHA, Priority.OMEGA)
ALS, BLS = Capability.ALS, Capability.BLS


@dataclass(frozen=True)
class Card:
    code: str
    name_en: str
    name_vi: str
    priority: Priority
    capability: Capability
    hospital_capability: str | None  # what the receiving hospital must offer (None: any emergency department)

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "name_en": self.name_en,
            "name_vi": self.name_vi,
            "priority": self.priority.value,
            "capability": self.capability.value,
            "hospital_capability": self.hospital_capability,
        }


CARDS: tuple[Card, ...] = (
    Card("cardiac_arrest", "Cardiac or respiratory arrest", "Ngừng tim, ngừng thở", E, ALS, "cardiac"),
    Card("choking", "Choking, airway blocked", "Hóc dị vật, tắc đường thở", E, ALS, None),
    Card("drowning", "Drowning", "Đuối nước", E, ALS, None),
    Card("unconscious", "Unconscious or fainting", "Bất tỉnh, ngất", D, ALS, None),
    Card("chest_pain", "Chest pain or heart problem", "Đau ngực, bệnh tim", D, ALS, "cardiac"),
    Card("breathing_problems", "Breathing problems", "Khó thở", D, ALS, None),
    Card("stroke", "Stroke symptoms (face, arm, speech)", "Đột quỵ", D, ALS, "stroke"),
    Card("severe_bleeding", "Severe bleeding", "Chảy máu nặng", D, ALS, "trauma"),
    Card("traffic_collision", "Traffic collision", "Tai nạn giao thông", D, ALS, "trauma"),
    Card("major_trauma", "Stab, gunshot or major injury", "Chấn thương nặng, vết đâm", D, ALS, "trauma"),
    Card("anaphylaxis", "Severe allergic reaction", "Sốc phản vệ", D, ALS, None),
    Card("electrocution", "Electrocution", "Điện giật", D, ALS, None),
    Card("obstetric", "Pregnancy, childbirth, miscarriage", "Sản khoa, chuyển dạ", D, ALS, "obstetric"),
    Card("seizure", "Seizure or convulsions", "Co giật", C, ALS, None),
    Card("pediatric", "Sick or injured child", "Trẻ em bị bệnh, bị thương", C, ALS, "pediatric"),
    Card("overdose_poisoning", "Overdose or poisoning", "Ngộ độc, quá liều", C, ALS, None),
    Card("burns", "Burns or explosion", "Bỏng, cháy nổ", C, ALS, "trauma"),
    Card("diabetic", "Diabetic problem", "Rối loạn đường huyết", C, BLS, None),
    Card("psychiatric", "Psychiatric problem or suicide attempt", "Tâm thần, tự tử", C, BLS, None),
    Card("heat_cold", "Heat or cold exposure", "Say nắng, hạ thân nhiệt", C, BLS, None),
    Card("fall", "Fall", "Ngã", B, BLS, "trauma"),
    Card("headache", "Headache", "Đau đầu", B, BLS, None),
    Card("assault_minor", "Assault, minor injury", "Hành hung, thương tích nhẹ", B, BLS, None),
    Card("abdominal_pain", "Abdominal pain", "Đau bụng", A, BLS, None),
    Card("back_pain", "Back pain", "Đau lưng", A, BLS, None),
    Card("sick_person", "Sick person (no priority symptom)", "Người ốm (không triệu chứng ưu tiên)", A, BLS, None),
    Card("eye_problem", "Eye problem", "Bệnh về mắt", OM, BLS, None),
    Card("transfer", "Inter-facility transfer", "Chuyển viện", OM, BLS, None),
)
_BY_CODE = {c.code: c for c in CARDS}


def card(code: str) -> Card:
    try:
        return _BY_CODE[code]
    except KeyError:
        raise InvalidInput(f"complaint {code!r} is not a triage card; allowed: {', '.join(_BY_CODE)}") from None


def capability_for(priority: Priority, complaint: Card) -> Capability:
    """Echo and delta always need advanced life support; otherwise the card decides."""
    return ALS if priority in (E, D) else complaint.capability
