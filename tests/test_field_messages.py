"""Field validation messages follow the user's language, in the UI and in the API."""

from conftest import login, reception_body

from node.errors import FIELD_EN, field_message


def test_every_known_field_message_has_an_english_twin():
    assert field_message("Chọn thủ tục hành chính.", "en") == "Choose a procedure."
    assert field_message("Phải là số nguyên từ 1 đến 50.", "en") == "Must be a whole number from 1 to 50."
    assert field_message("Tối đa 120 ký tự.", "en") == "At most 120 characters."
    assert field_message("Chọn thủ tục hành chính.", "vi") == "Chọn thủ tục hành chính."
    assert all(v and v != k for k, v in FIELD_EN.items())


def test_counter_errors_in_english(client):
    login(client, "reception")
    client.get("/counter?lang=en")
    resp = client.post("/counter", data=reception_body(applicant_name="", sets="abc"))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Enter the applicant&#39;s full name." in page or "Enter the applicant's full name." in page
    assert "Must be a whole number from 1 to 50." in page


def test_counter_errors_in_vietnamese(client):
    login(client, "reception")
    resp = client.post("/counter", data=reception_body(applicant_name=""))
    assert resp.status_code == 422
    assert "Cần nhập họ tên người nộp hồ sơ." in resp.get_data(as_text=True)
