from facelab import labels


def test_emotion_orders_match_hsemotion():
    assert labels.EMOTIONS_8 == ("Anger", "Contempt", "Disgust", "Fear", "Happiness",
                                 "Neutral", "Sadness", "Surprise")
    assert labels.EMOTIONS_7 == tuple(e for e in labels.EMOTIONS_8 if e != "Contempt")
    assert labels.emotions(7) == labels.EMOTIONS_7


def test_affectnet_raw_ids_cover_all_eight_emotions():
    assert sorted(labels.AFFECTNET_RAW_IDS.values()) == sorted(labels.EMOTIONS_8)
    assert set(labels.AFFECTNET_RAW_IDS).isdisjoint(labels.AFFECTNET_SKIPPED_IDS)


def test_afew_maps_to_seven_emotions():
    assert sorted(labels.AFEW_EMOTIONS.values()) == sorted(labels.EMOTIONS_7)


def test_age_classes_are_one_based():
    assert labels.age_to_class(1) == 0 and labels.class_to_age(0) == 1
    assert labels.age_to_class(100) == 99 and labels.age_to_class(130) == 99
    assert labels.age_to_class(0) == 0


def test_group_label_majority_valence():
    assert labels.group_label(["Happiness", "Happiness", "Anger"]) == "Positive"
    assert labels.group_label(["Sadness", "Anger", "Neutral"]) == "Negative"
    assert labels.group_label(["Neutral", "Neutral", "Happiness"]) == "Neutral"
    assert labels.group_label(["Happiness", "Anger"]) == "Neutral"
