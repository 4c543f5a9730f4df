"""Synthetic applicants for the benchmark: Vietnamese names, ID numbers, addresses, phones.

Family names follow their rough national frequency (Nguyễn about 38 %), so a search for "nguyen" matches
a realistic share of a commune's dossiers; middle and given names are drawn per gender.
"""

from __future__ import annotations

import random
from datetime import date

FAMILY = [("Nguyễn", 380), ("Trần", 110), ("Lê", 95), ("Phạm", 70), ("Hoàng", 51), ("Huỳnh", 20),
          ("Phan", 45), ("Vũ", 39), ("Võ", 20), ("Đặng", 21), ("Bùi", 20), ("Đỗ", 14), ("Hồ", 13),
          ("Ngô", 13), ("Dương", 10), ("Lý", 5), ("Đinh", 6), ("Trịnh", 5), ("Mai", 4), ("Lương", 4),
          ("Đào", 5), ("Cao", 3), ("Tạ", 2), ("Hà", 4), ("Kiều", 1), ("Quách", 1), ("Lục", 1), ("Triệu", 2)]
MIDDLE_M = ["Văn", "Hữu", "Đức", "Quang", "Minh", "Công", "Quốc", "Xuân", "Thành", "Đình", "Ngọc", "Trọng"]
MIDDLE_F = ["Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Mai", "Kim", "Minh", "Hồng", "Phương", "Bích"]
GIVEN_M = ["Hùng", "Dũng", "Tuấn", "Long", "Nam", "Phúc", "Khánh", "Đạt", "Thắng", "Hiếu", "Sơn", "Trung",
           "Cường", "Hải", "Hoàng", "Huy", "Kiên", "Lâm", "Mạnh", "Nghĩa", "Phong", "Quân", "Tài", "Thịnh",
           "Toàn", "Tú", "Việt", "Vinh", "Đông", "Bình", "Chiến", "Duy", "Giang", "Hiển", "Lộc", "Tâm"]
GIVEN_F = ["Hương", "Lan", "Hà", "Linh", "Trang", "Ngọc", "Thảo", "Yến", "Hạnh", "Nhung", "Ánh", "Duyên",
           "Hằng", "Huyền", "Loan", "Mai", "My", "Nga", "Oanh", "Phượng", "Quyên", "Thủy", "Trâm", "Vân",
           "Xuân", "Dung", "Giang", "Hoa", "Hiền", "Liên", "Nhàn", "Tuyết", "Uyên", "Chi", "Diệp", "Hậu"]
HAMLETS = ["Xóm Hồng Thái 1", "Xóm Hồng Thái 2", "Xóm Nam Đồng", "Xóm Guộc", "Xóm Soi Mít", "Xóm Chợ",
           "Xóm Đồng Kiệm", "Xóm Gò Pháo", "Xóm Nam Tân", "Xóm Y Na 1", "Xóm Y Na 2", "Xóm Lâm Sản"]
# Most applicants were registered in the home province (Thái Nguyên, 019); some elsewhere.
PROVINCES = [("019", 85), ("001", 5), ("024", 3), ("020", 3), ("079", 2), ("038", 2)]
_FAMILY_NAMES = [n for n, _ in FAMILY]
_FAMILY_WEIGHTS = [w for _, w in FAMILY]


def person(rng: random.Random, today: date) -> dict[str, str]:
    """One applicant as the reception form takes it (name, ID number, birth date, gender, address, phone)."""
    female = rng.random() < 0.52
    name = " ".join([rng.choices(_FAMILY_NAMES, _FAMILY_WEIGHTS)[0],
                     rng.choice(MIDDLE_F if female else MIDDLE_M), rng.choice(GIVEN_F if female else GIVEN_M)])
    year = rng.randint(1940, min(today.year - 16, 2008))
    birth = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    gender_digit = (0 if year < 2000 else 2) + (1 if female else 0)
    province = rng.choices([p for p, _ in PROVINCES], [w for _, w in PROVINCES])[0]
    return {
        "applicant_name": name,
        "applicant_id_number": f"{province}{gender_digit}{year % 100:02d}{rng.randint(0, 999999):06d}",
        "applicant_birth_date": birth,
        "applicant_gender": "female" if female else "male",
        "applicant_address": f"{rng.choice(HAMLETS)}, xã Tân Cương, tỉnh Thái Nguyên",
        "applicant_phone": f"0{rng.choice('39785')}{rng.randint(10000000, 99999999)}",
    }
